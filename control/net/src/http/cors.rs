//! CORS as the original configures it: `allowed_hosts` regexes matched against `Origin`.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use regex::Regex;
use tandem_settings::listeners::CorsSettings;

/// The methods announced in `Access-Control-Allow-Methods` (the original's defaults).
const ALLOWED_METHODS: &str = "GET, POST, PATCH, PUT, DELETE, OPTIONS";

/// A validated CORS policy.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Origins are allowed when any of these matches the whole `Origin` header.
    pub allowed_hosts: Vec<Regex>,
    /// Extra headers allowed besides the ones the browser asks for.
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Allow-Methods`, joined (`None`: the original's default list).
    pub allowed_methods: Option<HeaderValue>,
}

impl From<&CorsSettings> for Cors {
    fn from(settings: &CorsSettings) -> Self {
        let methods = settings.allowed_methods.join(", ");
        Self {
            allowed_hosts: settings.allowed_hosts.clone(),
            allowed_headers: settings.allowed_headers.clone(),
            // Settings validated each method as a token, so the joined list is a valid value.
            allowed_methods: (!methods.is_empty())
                .then(|| HeaderValue::from_str(&methods).ok())
                .flatten(),
        }
    }
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        self.allowed_hosts.iter().any(|r| r.is_match(origin))
    }
}

/// Middleware: adds the CORS headers for allowed origins and answers their preflight `OPTIONS`.
pub async fn apply(cors: std::sync::Arc<Cors>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| cors.allows(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let mut allowed_headers: Vec<String> = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for h in &cors.allowed_headers {
        if !allowed_headers.iter().any(|a| a.eq_ignore_ascii_case(h)) {
            allowed_headers.push(h.clone());
        }
    }
    let preflight = req.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("60"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        cors.allowed_methods
            .clone()
            .unwrap_or(HeaderValue::from_static(ALLOWED_METHODS)),
    );
    if !allowed_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&allowed_headers.join(", "))
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    response
}

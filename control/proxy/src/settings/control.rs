//! `public.control:` (Tandem addition): the proxy's `ControlService` (gRPC over mTLS) for operators
//! and the load harness, and who may use it.

use serde::Deserialize;
use serde_json::Value;

use tandem_serving::ServingConfig;
use tandem_settings::error::FieldIssues;
use tandem_settings::listeners::{HostPort, host_port, required, serving};
use tandem_settings::tls::{RawTlsSettings, TlsSettings};

/// The most admin names accepted (each is compared on every new control connection).
pub const MAX_ADMINS: usize = 256;

/// A validated `control:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// Where the ControlService listens.
    pub bind_address: HostPort,
    /// Server TLS; client certificates are always required and verified.
    pub tls: TlsSettings,
    /// Operators (certificate CN / DNS names) allowed to call it.
    pub admins: Vec<String>,
    /// The serving kit's admission policy and deadlines (`serving:`, defaults when absent).
    pub serving: ServingConfig,
}

/// Raw `control:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControlSettings {
    bind_address: String,
    tls: Option<Value>,
    admins: Vec<String>,
    serving: Option<Value>,
}

impl TryFrom<RawControlSettings> for ControlSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawControlSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let bind = host_port(&raw.bind_address, "bind_address", &mut issues);
        let tls = required::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues);
        if raw.admins.is_empty() {
            issues.push(
                "admins",
                "name at least one operator allowed to use the control service",
            );
        }
        if raw.admins.len() > MAX_ADMINS {
            issues.push("admins", format!("at most {MAX_ADMINS} names"));
        }
        if raw
            .admins
            .iter()
            .any(|a| a.is_empty() || a.chars().any(char::is_whitespace))
        {
            issues.push(
                "admins",
                "names must be non-empty and contain no whitespace",
            );
        }
        let serving = serving(raw.serving.as_ref(), &mut issues);
        match (bind, tls) {
            (Some(bind_address), Some(mut tls)) if issues.is_empty() => {
                // The control service only ever admits verified client certificates.
                tls.verify_client = true;
                tls.request_client_cert = false;
                Ok(Self {
                    bind_address,
                    tls,
                    admins: raw.admins,
                    serving,
                })
            }
            _ => Err(issues),
        }
    }
}

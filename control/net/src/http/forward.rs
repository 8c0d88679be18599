//! Outbound connections for our HTTP clients, direct or through an HTTP forward proxy
//! (`proxy_url`) with `CONNECT host:port`, as Go's `net/http` does for the original's clients.
//!
//! The CONNECT exchange is written here rather than taken from hyper-util's `Tunnel`, whose error
//! type is not exported and folds every refusal into "unsuccessful": an operator whose corporate
//! proxy refuses needs to read the proxy's status line (`403 Forbidden`, `407 …`) in the error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tandem_types::ForwardProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

/// The largest answer to a CONNECT read from a forward proxy, in bytes.
pub const MAX_CONNECT_ANSWER_BYTES: usize = 8 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a tunnel through the forward proxy could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The proxy did not accept the TCP connection.
    #[error("forward proxy {proxy} is unreachable: {source}")]
    Unreachable {
        /// The proxy (credentials hidden).
        proxy: String,
        /// The connect error.
        #[source]
        source: BoxError,
    },
    /// The proxy answered the CONNECT with a status other than 2xx.
    #[error("forward proxy {proxy} refused the tunnel to {target}: {status}")]
    Refused {
        /// The proxy (credentials hidden).
        proxy: String,
        /// `host:port` asked for.
        target: String,
        /// Its status line (`403 Forbidden`).
        status: String,
    },
    /// 407: the proxy wants credentials, or refused the ones given.
    #[error("forward proxy {proxy} wants credentials for the tunnel to {target} (407); {hint}")]
    AuthRequired {
        /// The proxy (credentials hidden).
        proxy: String,
        /// `host:port` asked for.
        target: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The proxy closed the connection, sent something that is not an HTTP answer, an answer
    /// longer than [`MAX_CONNECT_ANSWER_BYTES`], or bytes before the tunnel was used.
    #[error("forward proxy {proxy} broke the CONNECT to {target}: {reason}")]
    Protocol {
        /// The proxy (credentials hidden).
        proxy: String,
        /// `host:port` asked for.
        target: String,
        /// What it did.
        reason: &'static str,
    },
    /// Reading or writing the CONNECT failed.
    #[error("forward proxy {proxy}: CONNECT to {target} failed: {source}")]
    Io {
        /// The proxy (credentials hidden).
        proxy: String,
        /// `host:port` asked for.
        target: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The URL to reach has no host.
    #[error("{0}: no host to open a tunnel to")]
    NoHost(String),
}

/// The connector under our HTTPS connector: plain TCP to the target, or a CONNECT tunnel through
/// the configured forward proxy. TCP_NODELAY and keepalive are set either way ([`super::connector::tcp_connector`]).
#[derive(Clone, Debug)]
pub struct Outbound {
    http: HttpConnector,
    forward: Option<Arc<Forward>>,
}

#[derive(Debug)]
struct Forward {
    proxy: ForwardProxy,
    uri: Uri,
    authorization: Option<String>,
}

impl Outbound {
    /// Direct connections, or tunnels through `forward`.
    pub fn new(forward: Option<&ForwardProxy>) -> Result<Self, TunnelError> {
        let http = super::connector::tcp_connector();
        let forward = forward
            .map(|proxy| {
                let uri = format!("http://{}", proxy.authority())
                    .parse::<Uri>()
                    .map_err(|_| TunnelError::NoHost(proxy.to_string()))?;
                let authorization = proxy.credentials().map(|c| {
                    let pair = format!("{}:{}", c.user, c.password);
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    )
                });
                Ok(Arc::new(Forward {
                    proxy: proxy.clone(),
                    uri,
                    authorization,
                }))
            })
            .transpose()?;
        Ok(Self { http, forward })
    }
}

impl Service<Uri> for Outbound {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let Some(forward) = self.forward.clone() else {
            let connecting = self.http.call(dst);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let connecting = self.http.call(forward.uri.clone());
        Box::pin(async move {
            let target = target_authority(&dst)?;
            let mut io = connecting
                .await
                .map_err(|source| TunnelError::Unreachable {
                    proxy: forward.proxy.to_string(),
                    source: source.into(),
                })?;
            open_tunnel(io.inner_mut(), &forward, &target).await?;
            Ok(io)
        })
    }
}

/// `host:port` of the URL, with the scheme's default port when it names none.
fn target_authority(dst: &Uri) -> Result<String, TunnelError> {
    let host = dst
        .host()
        .ok_or_else(|| TunnelError::NoHost(dst.to_string()))?;
    let port = dst
        .port_u16()
        .unwrap_or(if dst.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    // `Uri::host` keeps the brackets of an IPv6 literal, as CONNECT wants them.
    Ok(format!("{host}:{port}"))
}

async fn open_tunnel(
    stream: &mut TcpStream,
    forward: &Forward,
    target: &str,
) -> Result<(), TunnelError> {
    let proxy = || forward.proxy.to_string();
    let io = |source| TunnelError::Io {
        proxy: proxy(),
        target: target.to_owned(),
        source,
    };
    let request = connect_request(target, forward.authorization.as_deref());
    stream.write_all(&request).await.map_err(io)?;
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        let protocol = |reason| TunnelError::Protocol {
            proxy: proxy(),
            target: target.to_owned(),
            reason,
        };
        if n == 0 {
            return Err(protocol("it closed the connection before answering"));
        }
        answer.extend_from_slice(&chunk[..n]);
        match read_answer(&answer) {
            Answer::TooLong => return Err(protocol("its answer is longer than the bound")),
            Answer::Incomplete if answer.len() >= MAX_CONNECT_ANSWER_BYTES => {
                return Err(protocol("its answer is longer than the bound"));
            }
            Answer::Incomplete => {}
            Answer::Open { rest: 0 } => return Ok(()),
            Answer::Open { .. } => {
                return Err(protocol("it sent bytes before the tunnel was used"));
            }
            // 407 asks for credentials; some proxies (tinyproxy) answer wrong ones with 401.
            Answer::Status(407 | 401, _) => {
                return Err(TunnelError::AuthRequired {
                    proxy: proxy(),
                    target: target.to_owned(),
                    hint: match forward.authorization {
                        None => "give them in proxy_url as http://user:password@host:port",
                        Some(_) => "it refused the user and password in proxy_url",
                    },
                });
            }
            Answer::Status(_, status) => {
                return Err(TunnelError::Refused {
                    proxy: proxy(),
                    target: target.to_owned(),
                    status,
                });
            }
            Answer::Malformed => return Err(protocol("its answer is not HTTP")),
        }
    }
}

/// The CONNECT request for `target` (`host:port`).
fn connect_request(target: &str, authorization: Option<&str>) -> Vec<u8> {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// What the bytes read so far say about the CONNECT.
#[derive(Debug, PartialEq)]
enum Answer {
    /// The head is not complete yet.
    Incomplete,
    /// 2xx: the tunnel is open; `rest` bytes followed the head.
    Open { rest: usize },
    /// Another status: its code and status line.
    Status(u16, String),
    /// More header lines than any proxy sends.
    TooLong,
    /// Not an HTTP answer.
    Malformed,
}

fn read_answer(bytes: &[u8]) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Partial) => Answer::Incomplete,
        Ok(httparse::Status::Complete(head)) => match response.code {
            Some(code) if (200..300).contains(&code) => Answer::Open {
                rest: bytes.len() - head,
            },
            Some(code) => Answer::Status(
                code,
                format!("{code} {}", response.reason.unwrap_or_default())
                    .trim_end()
                    .to_owned(),
            ),
            None => Answer::Malformed,
        },
        Err(httparse::Error::TooManyHeaders) => Answer::TooLong,
        Err(_) => Answer::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_request_names_the_target_and_the_credentials() {
        let plain = connect_request("sd.example:3322", None);
        assert_eq!(
            plain,
            b"CONNECT sd.example:3322 HTTP/1.1\r\nHost: sd.example:3322\r\n\r\n".to_vec()
        );
        let with = String::from_utf8(connect_request("[::1]:1", Some("Basic YTpi"))).unwrap();
        assert!(with.starts_with("CONNECT [::1]:1 HTTP/1.1\r\n"), "{with}");
        assert!(
            with.contains("\r\nProxy-Authorization: Basic YTpi\r\n\r\n"),
            "{with}"
        );
    }

    #[test]
    fn answers_are_read_incrementally_and_bounded_by_their_head() {
        let ok = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: t\r\n\r\n";
        for cut in 0..ok.len() {
            assert_eq!(read_answer(&ok[..cut]), Answer::Incomplete, "{cut}");
        }
        assert_eq!(read_answer(ok), Answer::Open { rest: 0 });
        let mut early = ok.to_vec();
        early.extend_from_slice(b"xy");
        assert_eq!(read_answer(&early), Answer::Open { rest: 2 });
        assert_eq!(
            read_answer(b"HTTP/1.0 403 Forbidden\r\n\r\n"),
            Answer::Status(403, "403 Forbidden".into())
        );
        assert_eq!(
            read_answer(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            Answer::Status(407, "407 Proxy Authentication Required".into())
        );
        assert_eq!(read_answer(b"SSH-2.0-OpenSSH\r\n\r\n"), Answer::Malformed);
        let many = format!("HTTP/1.1 200 OK\r\n{}", "X-A: b\r\n".repeat(100));
        assert_eq!(read_answer(many.as_bytes()), Answer::TooLong);
    }

    #[test]
    fn targets_get_the_default_port_of_their_scheme() {
        let t = |u: &str| target_authority(&u.parse().unwrap()).unwrap();
        assert_eq!(t("https://sd.example/jsonrpc"), "sd.example:443");
        assert_eq!(t("http://app.local/jsonrpc"), "app.local:80");
        assert_eq!(t("https://127.0.0.1:3322/jsonrpc"), "127.0.0.1:3322");
        assert_eq!(t("http://[::1]:5555/"), "[::1]:5555");
    }
}

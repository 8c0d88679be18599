//! The one place HTTP clients get their (optionally TLS) connector: hyper-rustls over a rustls
//! config from our TLS settings, with an optional fixed server name, over direct TCP or a CONNECT
//! tunnel through a forward proxy ([`super::forward`]).

use std::sync::Arc;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::forward::{Outbound, TunnelError};
use crate::tls::TlsError;
use tandem_settings::TlsSettings;
use tandem_types::ForwardProxy;

/// Why a connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The TLS settings did not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server name is not a DNS name or IP address.
    #[error("server name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    /// The forward proxy is unusable.
    #[error(transparent)]
    Forward(#[from] TunnelError),
}

/// A connector for `http://` and `https://` URLs. With `tls`, its certificates and CAs are used and
/// its `server_name` (when set) replaces the URL's host in the certificate check. With `forward`,
/// every connection is a tunnel through that proxy (TLS to the target runs inside it).
pub fn https_connector(
    tls: Option<&TlsSettings>,
    forward: Option<&ForwardProxy>,
) -> Result<HttpsConnector<Outbound>, ConnectorError> {
    let config = tls.map(|t| crate::tls::client_config(t, &[])).transpose()?;
    let server_name = tls.and_then(|t| t.server_name.as_deref());
    connector_from_config(config, server_name, forward)
}

/// A connector over an existing rustls config (`None`: plain HTTP only, no trust anchors).
pub fn connector_from_config(
    config: Option<Arc<ClientConfig>>,
    server_name: Option<&str>,
    forward: Option<&ForwardProxy>,
) -> Result<HttpsConnector<Outbound>, ConnectorError> {
    let mut config = match config {
        Some(c) => (*c).clone(),
        None => plain_config()?,
    };
    // hyper-rustls negotiates ALPN itself and panics on a config that already names protocols.
    config.alpn_protocols.clear();
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match server_name {
        Some(name) => {
            let parsed = ServerName::try_from(name.to_owned())
                .map_err(|_| ConnectorError::ServerName(name.to_owned()))?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(parsed))
        }
        None => builder,
    };
    Ok(builder
        .enable_http1()
        .enable_http2()
        .wrap_connector(Outbound::new(forward)?))
}

/// TCP keepalive probe interval of client sockets: a dead peer behind a silent network is noticed
/// within minutes even on a pooled connection nobody uses.
const CLIENT_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(60);

/// The TCP side of every HTTP client: `TCP_NODELAY` (a JSON-RPC request or answer is one small
/// write; without it the second segment waits out Nagle and the peer's delayed ACK, ~40 ms) and
/// keepalive. `enforce_http(false)`: the TLS layer above handles `https://`.
pub(crate) fn tcp_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(CLIENT_KEEPALIVE));
    http
}

/// The config of a client that only speaks plain HTTP (hyper-rustls wants one regardless).
fn plain_config() -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            context: "protocol versions".into(),
            source,
        })?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_with_alpn_does_not_panic() {
        let mut config = plain_config().unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        assert!(connector_from_config(Some(Arc::new(config)), Some("hd-1"), None).is_ok());
        assert!(matches!(
            connector_from_config(None, Some("not a name!"), None),
            Err(ConnectorError::ServerName(_))
        ));
    }

    #[tokio::test]
    async fn client_sockets_get_nodelay_and_keepalive() {
        use tower::ServiceExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await });
        let connector = connector_from_config(None, None, None).unwrap();
        let uri: hyper::Uri = format!("http://{addr}/").parse().unwrap();
        let stream = connector.oneshot(uri).await.unwrap();
        let hyper_rustls::MaybeHttpsStream::Http(tcp) = stream else {
            panic!("a plain http:// URL gives a plain TCP stream");
        };
        let tcp = tcp.into_inner();
        assert!(
            tcp.nodelay().unwrap(),
            "TCP_NODELAY not set on the client socket"
        );
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap(), "SO_KEEPALIVE not set");
        drop(accept.await.unwrap().unwrap());
    }
}

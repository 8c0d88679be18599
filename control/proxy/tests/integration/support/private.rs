//! The private proxy in tests: started in process (optionally with its
//! metrics port), its TerminateTLS certificate, and the public proxy's side of
//! `announceConnection` / `incomingConnection`. Built on [`super::proxy`].
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_net::jsonrpc::params;
use tandem_proxy::PrivateProxy;
use tandem_proxy::settings::PrivateProxySettings;
use tandem_settings::tls::TlsSettings;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::proxy::{
    CALL_TIMEOUT, PRIVATE, PUBLIC, client_info, entry, with_pairing_endpoints, with_proxy_settings,
};

/// The domain the tests announce through the private proxy.
pub const DOMAIN: &str = "foo.internal-server.local";

/// A private proxy running in process.
pub struct Private {
    /// A plain JSON-RPC client of its server.
    pub client: JsonRpcClient,
    /// Its metrics address, when started with one.
    pub metrics: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Private {
    /// Starts the proxy on 127.0.0.1:0, with a metrics port when `metrics` is set.
    pub async fn start(settings: &PrivateProxySettings, metrics: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut private = PrivateProxy::start(settings, listener).await.unwrap();
        let mut metrics_addr = None;
        if metrics {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            metrics_addr = Some(l.local_addr().unwrap());
            private = private.with_metrics(l);
        }
        let url = format!("http://{}/jsonrpc", private.jsonrpc_addr());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            private
                .serve(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            client: JsonRpcClient::new(&url, None, None, CALL_TIMEOUT).unwrap(),
            metrics: metrics_addr,
            stop,
            task,
        }
    }

    /// Announces [`DOMAIN`] to the public proxy. The fake Hyper has no route to a public proxy,
    /// so the remote call fails (404, passed through); the announcement is kept anyway.
    pub async fn announce(&self) {
        let app = client_info(&with_proxy_settings(
            entry("internal-server", &[], &[]),
            PRIVATE,
            &[".internal-server.local"],
        ));
        let err = self
            .client
            .call(
                "announceConnection",
                params([
                    ("proxy", json!(PUBLIC)),
                    ("domain", json!(DOMAIN)),
                    ("_client", app),
                ]),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }

    /// `incomingConnection` as the public proxy (whose entry lists `endpoint` as its pairing
    /// endpoint): dial `endpoint` and write `token`.
    pub async fn incoming(
        &self,
        endpoint: SocketAddr,
        token: [u8; 32],
    ) -> Result<Value, ClientError> {
        let endpoint = endpoint.to_string();
        self.incoming_listing(&endpoint, token, &[&endpoint]).await
    }

    /// `incomingConnection` as the public proxy whose directory entry lists `listed` as its
    /// pairing endpoints, asking to dial `endpoint`.
    pub async fn incoming_listing(
        &self,
        endpoint: &str,
        token: [u8; 32],
        listed: &[&str],
    ) -> Result<Value, ClientError> {
        let public = with_pairing_endpoints(entry(PUBLIC, &[], &[]), listed);
        self.client
            .call(
                "incomingConnection",
                params([
                    ("domain", json!(DOMAIN)),
                    ("token", json!(STANDARD.encode(token))),
                    ("endpoint", json!(endpoint)),
                    ("_client", client_info(&public)),
                ]),
            )
            .await
    }

    /// Stops the proxy and waits for its task.
    pub async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Writes a self-signed certificate for [`DOMAIN`] into `dir`; returns TLS settings serving it
/// and the certificate (a client's only root).
pub fn terminate_tls(dir: &Path) -> (TlsSettings, rustls_pki_types::CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec![DOMAIN.to_owned()]).unwrap();
    let (cert, key) = (dir.join("internal.crt"), dir.join("internal.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let settings = TlsSettings {
        ca_certificate_files: vec![cert.clone()],
        certificate_file: Some(cert),
        key_file: Some(key),
        server_name: None,
        verify_client: false,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    (settings, ck.cert.der().clone())
}

/// A TLS connection to [`DOMAIN`] over `paired`, trusting only `root`.
pub async fn tls_to_domain(
    paired: TcpStream,
    root: &rustls_pki_types::CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tandem_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from(DOMAIN.to_owned()).unwrap();
    connector.connect(name, paired).await.unwrap()
}

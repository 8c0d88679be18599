//! The TLS passthrough stack of the SNI tests: a public proxy (engine TLS port) and a private
//! proxy in ForwardTLS mode in process, wired by two fake Hyper nodes, in front of a TLS backend;
//! an HTTPS client with a > 2 KiB ClientHello, and the announcement call. Built on [`super::proxy`].
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tandem_engine::Driver;
use tandem_net::http::JsonRpcClient;
use tandem_net::jsonrpc::params;
use tandem_proxy::settings::PublicProxySettings;
use tandem_proxy::{PrivateProxy, PublicHandle, PublicProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::proxy::*;

pub const DOMAIN: &str = "foo.internal-server.local";

/// A TLS backend answering every request with `hello` (one request per connection).
pub async fn backend(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> (SocketAddr, JoinHandle<()>) {
    let config = rustls::ServerConfig::builder_with_provider(tandem_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// An HTTPS GET to `tls_port` with SNI `name`, ALPN padded so the ClientHello exceeds 2 KiB.
pub async fn https_get(
    tls_port: SocketAddr,
    name: &str,
    root: &rustls_pki_types::CertificateDer<'static>,
) -> std::io::Result<String> {
    let stream = TcpStream::connect(tls_port).await?;
    https_get_over(stream, name, root).await
}

/// [`https_get`] over a connected `stream` (e.g. one that already sent a PROXY header).
pub async fn https_get_over(
    stream: TcpStream,
    name: &str,
    root: &rustls_pki_types::CertificateDer<'static>,
) -> std::io::Result<String> {
    let mut tls = tls_connect(stream, name, root).await?;
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A TLS handshake with SNI `name` over `stream` (the > 2 KiB ClientHello of [`https_get`]),
/// bounded by 10 s; the connection stays open, its request not sent.
pub async fn tls_connect(
    stream: TcpStream,
    name: &str,
    root: &rustls_pki_types::CertificateDer<'static>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(tandem_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = (0..24)
        .map(|i| format!("{i:02}{}", "x".repeat(98)).into_bytes())
        .collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(server_name, stream),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

pub struct Stack {
    pub public: PublicHandle,
    /// The public proxy's `/metrics` address.
    pub metrics: SocketAddr,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    pub hypers: Vec<RunningHyper>,
}

pub async fn stack(dir: &std::path::Path, internal: SocketAddr) -> (Stack, JsonRpcClient) {
    stack_on(dir, internal, Driver::Auto).await
}

pub async fn stack_on(
    dir: &std::path::Path,
    internal: SocketAddr,
    driver: Driver,
) -> (Stack, JsonRpcClient) {
    stack_with(dir, internal, |s| s.engine.config.driver = driver).await
}

/// The stack with the public proxy's settings changed by `edit` first.
pub async fn stack_with(
    dir: &std::path::Path,
    internal: SocketAddr,
    edit: impl FnOnce(&mut PublicProxySettings),
) -> (Stack, JsonRpcClient) {
    stack_edited(dir, internal, edit, |_| {}).await
}

/// The stack with the public and the private proxy's settings changed first.
pub async fn stack_edited(
    dir: &std::path::Path,
    internal: SocketAddr,
    edit: impl FnOnce(&mut PublicProxySettings),
    edit_private: impl FnOnce(&mut tandem_proxy::settings::PrivateProxySettings),
) -> (Stack, JsonRpcClient) {
    let pki = pki(dir);
    let private_entry = with_proxy_settings(
        entry(PRIVATE, &[], &[]),
        PUBLIC,
        &[".internal-server.local"],
    );
    let public_hyper = RunningHyper::start(PUBLIC, Vec::new()).await;
    let private_hyper = RunningHyper::start(PRIVATE, Vec::new()).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = public_settings(&pki, dir, public_hyper.addr);
    edit(&mut settings);
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = metrics_listener.local_addr().unwrap();
    let public = PublicProxy::start(&settings, listener)
        .await
        .unwrap()
        .with_metrics(metrics_listener);
    let handle = public.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut private_settings = private_settings(dir, private_hyper.addr, internal);
    edit_private(&mut private_settings);
    let private = PrivateProxy::start(&private_settings, listener)
        .await
        .unwrap();
    let private_url = format!("http://{}/jsonrpc", private.jsonrpc_addr());
    let private_client = JsonRpcClient::new(&private_url, None, None, CALL_TIMEOUT).unwrap();

    // Hyper routing: the public side's Hyper delivers to the private proxy as the public
    // operator; the private side's Hyper delivers to the public proxy as the private operator.
    public_hyper.hyper.routes.lock().unwrap().insert(
        PRIVATE.into(),
        Route {
            client: private_client.clone(),
            caller: client_info(&with_pairing_endpoints(
                entry(PUBLIC, &[], &[]),
                &[handle.endpoint()],
            )),
        },
    );
    private_hyper.hyper.routes.lock().unwrap().insert(
        PUBLIC.into(),
        Route {
            client: proxy_client(&pki, PUBLIC, handle.jsonrpc_addr()),
            caller: client_info(&private_entry),
        },
    );
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let (tx, rx) = oneshot::channel::<()>();
    stops.push(tx);
    tasks.push(tokio::spawn(async move {
        public
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap()
    }));
    let (tx, rx) = oneshot::channel::<()>();
    stops.push(tx);
    tasks.push(tokio::spawn(async move {
        private
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap()
    }));
    let stack = Stack {
        public: handle,
        metrics,
        stops,
        tasks,
        hypers: vec![public_hyper, private_hyper],
    };
    (stack, private_client)
}

impl Stack {
    pub async fn stop(self) {
        drop(self.public);
        // Dropping the routes' clients closes their keep-alive connections to the proxies.
        for h in &self.hypers {
            h.hyper.routes.lock().unwrap().clear();
        }
        for s in self.stops {
            let _ = s.send(());
        }
        for t in self.tasks {
            t.await.unwrap();
        }
        for h in self.hypers {
            h.stop().await;
        }
    }
}

pub async fn announce(
    private: &JsonRpcClient,
    domain: &str,
) -> Result<serde_json::Value, tandem_net::http::ClientError> {
    let app = with_proxy_settings(
        entry("internal-server", &[], &[]),
        PRIVATE,
        &[".internal-server.local"],
    );
    private
        .call(
            "announceConnection",
            params([
                ("proxy", json!(PUBLIC)),
                ("domain", json!(domain)),
                ("_client", client_info(&app)),
            ]),
        )
        .await
}

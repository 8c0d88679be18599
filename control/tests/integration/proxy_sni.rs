//! TLS passthrough by SNI through the public proxy's engine to a private proxy in ForwardTLS
//! mode and on to a TLS backend: a > 2 KiB ClientHello routes, the HTTPS request succeeds end
//! to end; unknown names and malformed hellos are refused and counted, other pairs unaffected.
#![allow(clippy::unwrap_used)]

use crate::proxy_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_support::*;
use serde_json::json;
use tandem_control::http::JsonRpcClient;
use tandem_control::jsonrpc::params;
use tandem_control::proxy::{PrivateProxy, PublicHandle, PublicProxy};
use tandem_engine::Driver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DOMAIN: &str = "foo.internal-server.local";

/// A TLS backend answering every request with `hello` (one request per connection).
pub(crate) async fn backend(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> (SocketAddr, JoinHandle<()>) {
    let config = rustls::ServerConfig::builder_with_provider(tandem_control::tls::provider())
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
pub(crate) async fn https_get(
    tls_port: SocketAddr,
    name: &str,
    root: &rustls_pki_types::CertificateDer<'static>,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(tandem_control::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = (0..24)
        .map(|i| format!("{i:02}{}", "x".repeat(98)).into_bytes())
        .collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(tls_port).await?;
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(server_name, stream),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))??;
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A public and a private proxy with their fake Hyper nodes routing to each other.
pub(crate) struct Stack {
    pub(crate) public: PublicHandle,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The public side's Hyper, then the private side's (its route to the public proxy holds
    /// a client of the public proxy's JSON-RPC server).
    pub(crate) hypers: Vec<RunningHyper>,
}

pub(crate) async fn stack(dir: &std::path::Path, internal: SocketAddr) -> (Stack, JsonRpcClient) {
    stack_on(dir, internal, Driver::Auto).await
}

async fn stack_on(
    dir: &std::path::Path,
    internal: SocketAddr,
    driver: Driver,
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
    settings.engine.config.driver = driver;
    let public = PublicProxy::start(&settings, listener).await.unwrap();
    let handle = public.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let private = PrivateProxy::start(
        &private_settings(dir, private_hyper.addr, internal),
        listener,
    )
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
            caller: client_info(&entry(PUBLIC, &[], &[])),
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
        stops,
        tasks,
        hypers: vec![public_hyper, private_hyper],
    };
    (stack, private_client)
}

impl Stack {
    pub(crate) async fn stop(self) {
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

async fn announce(
    private: &JsonRpcClient,
    domain: &str,
) -> Result<serde_json::Value, tandem_control::http::ClientError> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_client_hello_reaches_the_private_proxy_and_the_backend_io_uring() {
    large_hello_end_to_end(Driver::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_client_hello_reaches_the_private_proxy_and_the_backend_epoll() {
    large_hello_end_to_end(Driver::Legacy).await;
}

async fn large_hello_end_to_end(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend_addr, backend_task) = backend(cert.clone(), key).await;
    let (stack, private) = stack_on(dir.path(), backend_addr, driver).await;
    assert_eq!(announce(&private, DOMAIN).await.unwrap(), json!("ok"));
    let live = private.call("getAnnouncements", params([])).await.unwrap();
    assert_eq!(live[0]["domain"], DOMAIN);
    let tls_port = stack.public.engine_addrs().tls.unwrap();

    let body = https_get(tls_port, DOMAIN, &cert).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.ends_with("hello"), "{body}");

    // Unknown name: refused and counted.
    let (other_cert, _) = self_signed("bar.internal-server.local");
    assert!(
        https_get(tls_port, "bar.internal-server.local", &other_cert)
            .await
            .is_err()
    );
    // Malformed hello: closed.
    let mut junk = TcpStream::connect(tls_port).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), junk.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let public = stack.public.clone();
    eventually("refusals counted", || {
        public.stats().engine_total(|c| c.bad_hellos) >= 2
    })
    .await;
    // Other connections are unaffected.
    let body = https_get(tls_port, DOMAIN, &cert).await.unwrap();
    assert!(body.ends_with("hello"), "{body}");

    let stats = stack.public.stats();
    assert_eq!(stats.proxy.sni_resolved, 2);
    assert_eq!(stats.proxy.sni_refused, 1);
    assert_eq!(stats.proxy.sni_notify_failed, 0);
    assert_eq!(stats.engine_total(|c| c.paired), 2);
    drop(private);
    stack.stop().await;
    backend_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_incoming_connection_cancels_the_sni_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend_addr, backend_task) = backend(cert.clone(), key).await;
    let (stack, private) = stack(dir.path(), backend_addr).await;
    assert_eq!(announce(&private, DOMAIN).await.unwrap(), json!("ok"));
    let err = announce(&private, "foo.example.com").await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // The private proxy forgets the announcement's route: incomingConnection now fails.
    stack.hypers[0].hyper.routes.lock().unwrap().clear();
    let tls_port = stack.public.engine_addrs().tls.unwrap();
    assert!(https_get(tls_port, DOMAIN, &cert).await.is_err());
    let public = stack.public.clone();
    eventually("pair cancelled, nothing issued", || {
        let s = public.stats();
        s.proxy.sni_notify_failed == 1
            && s.engine_total(|c| c.issued_pairs) == 0
            && s.engine_total(|c| c.waiting) == 0
    })
    .await;
    drop(private);
    stack.stop().await;
    backend_task.abort();
}

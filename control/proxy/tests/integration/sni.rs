//! TLS passthrough by SNI through the public proxy's engine to a private proxy in ForwardTLS
//! mode and on to a TLS backend: a > 2 KiB ClientHello routes, the HTTPS request succeeds end
//! to end; unknown names and malformed hellos are refused and counted, other pairs unaffected.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use crate::support::sni;

use std::time::Duration;

use proxy::*;
use serde_json::json;
use sni::{DOMAIN, announce, backend, https_get, stack, stack_on};
use tandem_engine::Driver;
use tandem_net::jsonrpc::params;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let n = tokio::time::timeout(Duration::from_secs(30), junk.read(&mut buf))
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

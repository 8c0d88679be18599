//! A TLS connection routed by SNI counts against its domain owner's live-pairs quota end to
//! end: with a quota of one live pair, a second connection while the first is open is refused
//! (closed before its handshake completes, counted in `proxy_quota_refusals_total`), and once
//! the first connection ends its slot serves the next. (Another operator being served while one
//! is at its quota, and the Redis counter, are covered beside `admit_sni`.)
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use crate::support::sni;

use std::num::NonZeroU64;

use proxy::*;
use serde_json::json;
use sni::{DOMAIN, announce, backend, https_get, stack_with, tls_connect};
use tandem_testkit::metrics::{get, parse_prometheus, total};
use tandem_testkit::poll::{POLL_BOUND, until};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sni_connection_over_the_owner_live_pairs_quota_is_refused_until_a_pair_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend_addr, backend_task) = backend(cert.clone(), key).await;
    let (stack, private) = stack_with(dir.path(), backend_addr, |s| {
        s.quotas.default.live_pairs = NonZeroU64::new(1);
    })
    .await;
    assert_eq!(announce(&private, DOMAIN).await.unwrap(), json!("ok"));
    let tls_port = stack.public.engine_addrs().tls.unwrap();

    // The owner's one live pair: handshaken through to the backend and held open.
    let held = tls_connect(TcpStream::connect(tls_port).await.unwrap(), DOMAIN, &cert)
        .await
        .unwrap();
    let refusals = || async {
        let (_, text) = get(stack.metrics, "/metrics").await;
        let samples = parse_prometheus(&text);
        total(
            &samples,
            "proxy_quota_refusals_total",
            &["quota=\"live_pairs\""],
        )
    };
    assert_eq!(refusals().await, 0.0);
    assert!(
        https_get(tls_port, DOMAIN, &cert).await.is_err(),
        "a second connection is closed"
    );
    assert_eq!(refusals().await, 1.0, "the refusal is counted");

    // The first connection ends: the engine's close event gives the slot back.
    drop(held);
    let body = until(
        "the slot serves the next connection",
        POLL_BOUND,
        || async {
            https_get(tls_port, DOMAIN, &cert)
                .await
                .ok()
                .filter(|b| b.ends_with("hello"))
        },
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    drop(private);
    stack.stop().await;
    backend_task.abort();
}

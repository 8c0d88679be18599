//! Hostile clients at the public proxy's TLS port, through the whole passthrough stack (engine,
//! SNI resolver, `incomingConnection`, a ForwardTLS private proxy, a TLS backend):
//!
//! - silent ClientHellos naming the announced domain from one source get no more than
//!   `engine.sni_pairs_per_source` pairs (so private-proxy slots); the rest are closed, counted
//!   and exported in `/metrics`, and a real HTTPS client from another source is served;
//! - a connection flood from one source is held to `tcp_rate_limits` at accept, counted and
//!   exported, and an HTTPS client from another source is served.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use crate::support::sni;
use tandem_testkit::metrics;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use metrics::{get, parse_prometheus, total};
use proxy::*;
use serde_json::json;
use sni::{DOMAIN, Stack, announce, backend, https_get, stack_with};
use tandem_settings::TcpRateLimit;
use tandem_settings::listeners::RatePeriod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous bound of one blocking step (a hang fails the test).
const STEP: Duration = Duration::from_secs(30);

/// The records of a real TLS 1.3 ClientHello naming `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(tandem_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// A connection to `addr` from 127.0.0.`host`.
async fn connect_from(host: u8, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, host), 0);
    socket.bind(SocketAddr::V4(src)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sums `name{labels}` over cores in the public proxy's `/metrics`.
async fn exported(stack: &Stack, name: &str, labels: &[&str]) -> f64 {
    let (status, text) = get(stack.metrics, "/metrics").await;
    assert_eq!(status, 200);
    total(&parse_prometheus(&text), name, labels)
}

/// Waits (generously bounded) for the proxy to close `s`, with no byte sent.
async fn closed_by_proxy(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(STEP, s.read(&mut buf)).await;
    match read.expect("closed within the bound") {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("the proxy answered a refused connection with {n} bytes"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_hellos_from_one_source_get_their_budget_of_pairs_and_a_client_is_served() {
    const BUDGET: u32 = 2;
    const FLOOD: u64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend_addr, backend_task) = backend(cert.clone(), key).await;
    let (stack, private) = stack_with(dir.path(), backend_addr, |s| {
        s.engine.config.sni_pairs_per_source = BUDGET;
    })
    .await;
    assert_eq!(announce(&private, DOMAIN).await.unwrap(), json!("ok"));
    let tls_port = stack.public.engine_addrs().tls.unwrap();

    // Silent hellos from 127.0.0.2, held open (each would hold a private slot until a timeout).
    let hello = client_hello(DOMAIN);
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let mut s = connect_from(2, tls_port).await;
        s.write_all(&hello).await.unwrap();
        flood.push(s);
    }
    let public = stack.public.clone();
    let refused = move || public.stats().engine_total(|c| c.sni_source_refusals);
    let public = stack.public.clone();
    let resolved = move || public.stats().proxy.sni_resolved;
    eventually("every hello routed or refused", || {
        resolved() + refused() == FLOOD
    })
    .await;
    let (routed, refused) = (resolved(), refused());
    // Two cores hold one each: at most the budget, engine-wide.
    assert!((1..=u64::from(BUDGET)).contains(&routed), "{routed} pairs");
    let stats = stack.public.stats();
    assert_eq!(stats.engine_total(|c| c.sni_pairs_held), routed);
    assert_eq!(stats.engine_total(|c| c.bad_hellos), 0);
    assert_eq!(
        exported(
            &stack,
            "engine_sni_budget_refusals_total",
            &[r#"budget="source""#]
        )
        .await,
        refused as f64
    );

    // A real HTTPS client from another source (127.0.0.1) is served end to end.
    let body = https_get(tls_port, DOMAIN, &cert).await.unwrap();
    assert!(body.ends_with("hello"), "{body}");
    // Each flood connection either was refused (closed without a byte) or reached the backend
    // (whose ServerHello comes back through the pair).
    let (mut closed, mut answered) = (0u64, 0u64);
    for s in &mut flood {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(STEP, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            Ok(Ok(_)) => answered += 1,
            Err(_) => panic!("a flood connection neither closed nor answered within {STEP:?}"),
        }
    }
    assert_eq!((closed, answered), (refused, routed));
    drop(flood);
    drop(private);
    stack.stop().await;
    backend_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_source_is_held_to_tcp_rate_limits_and_a_client_is_served() {
    const LIMIT: u32 = 4;
    const FLOOD: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend_addr, backend_task) = backend(cert.clone(), key).await;
    let (stack, private) = stack_with(dir.path(), backend_addr, |s| {
        s.tcp_rate_limits = vec![TcpRateLimit {
            period: RatePeriod::Hour,
            limit: NonZeroU32::new(LIMIT).unwrap(),
        }];
    })
    .await;
    assert_eq!(announce(&private, DOMAIN).await.unwrap(), json!("ok"));
    let tls_port = stack.public.engine_addrs().tls.unwrap();

    // Connect-and-close probes from 127.0.0.2: the engine closes each, at accept past the rate.
    for _ in 0..FLOOD {
        let mut s = connect_from(2, tls_port).await;
        s.shutdown().await.unwrap();
        closed_by_proxy(&mut s).await;
    }
    let public = stack.public.clone();
    eventually("every probe accepted", || {
        public.stats().engine_total(|c| c.accepted) == FLOOD
    })
    .await;
    let stats = stack.public.stats();
    let refused = stats.engine_total(|c| c.rate_refusals);
    assert!(
        refused >= FLOOD - u64::from(LIMIT),
        "{refused} of {FLOOD} refused"
    );
    assert_eq!(stats.engine_total(|c| c.refused_at_accept), refused);
    assert_eq!(
        exported(
            &stack,
            "engine_accept_refusals_total",
            &[r#"reason="accept_rate""#]
        )
        .await,
        refused as f64
    );

    // Another source is served.
    let body = https_get(tls_port, DOMAIN, &cert).await.unwrap();
    assert!(body.ends_with("hello"), "{body}");
    drop(private);
    stack.stop().await;
    backend_task.abort();
}

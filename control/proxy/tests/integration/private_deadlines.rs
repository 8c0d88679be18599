//! The private proxy's own deadlines firing: `dial_timeout` when the public proxy's pairing port
//! (or, in ForwardTLS, the internal endpoint) is a blackhole, `internal_endpoint.timeout`
//! when a TerminateTLS client completes TLS (or not even that) but never sends a request, and
//! `internal_endpoint.idle_timeout` when a ForwardTLS connection carries no byte.
//!
//! `incomingConnection` answers `ok` before it dials (as the original does: the dial runs in
//! its own task), so the dial deadline is observed through what the task holds: its connection
//! slot (`proxy_private_connections` on the metrics port) and the paired socket.
#![allow(clippy::unwrap_used)]

use crate::support::faults;
use crate::support::private;
use crate::support::proxy;
use tandem_testkit::metrics;

use std::time::{Duration, Instant};

use faults::blackhole;
use metrics::{get, parse_prometheus, sample};
use private::{Private, terminate_tls, tls_to_domain};
use proxy::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The short deadline the tests set (dial_timeout, internal_endpoint.timeout or idle_timeout).
const DEADLINE: Duration = Duration::from_secs(1);
/// Lower bound of "fired at the deadline" (timer and scheduling slack below it).
const EARLIEST: Duration = Duration::from_millis(900);
/// Bound of "fired at all": generous, so a loaded machine cannot miss it, and still far below
/// what happens without the deadline (a blackholed dial hangs for the kernel's ~2 min of SYN
/// retries; a silent connection is never closed).
const LATEST: Duration = Duration::from_secs(30);

async fn open_connections(metrics: std::net::SocketAddr) -> f64 {
    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    sample(&parse_prometheus(&text), "proxy_private_connections")
}

/// Reads until EOF or reset; returns how long after `since` that happened (bounded by `LATEST`).
async fn closed_after<R: AsyncReadExt + Unpin>(stream: &mut R, since: Instant) -> Duration {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(LATEST, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "still open after {LATEST:?}");
    since.elapsed()
}

fn assert_at_deadline(waited: Duration, what: &str) {
    assert!(
        waited >= EARLIEST && waited < LATEST,
        "{what}: fired after {waited:?}, deadline {DEADLINE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_to_a_blackholed_pairing_port_gives_up_at_the_dial_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let internal = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = private_settings(dir.path(), hyper.addr, internal.local_addr().unwrap());
    settings.dial_timeout = DEADLINE;
    let private = Private::start(&settings, true).await;
    let metrics = private.metrics.unwrap();
    private.announce().await;
    let hole = blackhole().await;

    let started = Instant::now();
    let answer = private.incoming(hole.addr, [7u8; 32]).await.unwrap();
    assert_eq!(answer, json!({"message": "ok"}));
    let open = open_connections(metrics).await;
    // Checked only when the scrape came back before the deadline (a loaded machine may be late).
    if started.elapsed() < EARLIEST {
        assert_eq!(open, 1.0, "the dial holds a connection slot");
    }
    let freed = tandem_testkit::poll::until("the dial freeing its slot", LATEST, || async {
        (open_connections(metrics).await == 0.0).then(|| started.elapsed())
    })
    .await;
    assert_at_deadline(freed, "blackholed pairing port");
    private.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_dial_to_a_blackholed_internal_endpoint_closes_the_pair_at_the_dial_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let hole = blackhole().await;
    let mut settings = private_settings(dir.path(), hyper.addr, hole.addr);
    settings.dial_timeout = DEADLINE;
    let private = Private::start(&settings, false).await;
    private.announce().await;

    let pairing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = [5u8; 32];
    private
        .incoming(pairing.local_addr().unwrap(), token)
        .await
        .unwrap();
    let (mut paired, _) = pairing.accept().await.unwrap();
    let mut got = [0u8; 32];
    paired.read_exact(&mut got).await.unwrap();
    assert_eq!(got, token);
    // The token is written; the dial to the internal endpoint starts now.
    let started = Instant::now();
    let waited = closed_after(&mut paired, started).await;
    assert_at_deadline(waited, "blackholed internal endpoint");
    private.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_tls_client_that_never_sends_a_request_is_closed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tls, root) = terminate_tls(dir.path());
    let mut settings = private_settings(dir.path(), hyper.addr, upstream.local_addr().unwrap());
    settings.internal_endpoint.tls = Some(tls);
    settings.internal_endpoint.timeout = DEADLINE;
    let private = Private::start(&settings, false).await;
    private.announce().await;

    // 1. TLS completes, then silence: cut at the timeout.
    let socket = paired(&private).await;
    let started = Instant::now();
    let mut tls = tls_to_domain(socket, &root).await;
    let waited = closed_after(&mut tls, started).await;
    assert_at_deadline(waited, "silent client after TLS");
    // 2. Not even a ClientHello: cut at the same timeout.
    let mut silent = paired(&private).await;
    let started = Instant::now();
    let waited = closed_after(&mut silent, started).await;
    assert_at_deadline(waited, "silent client before TLS");
    // Nothing reached the upstream.
    let accepted = tokio::time::timeout(Duration::from_millis(100), upstream.accept()).await;
    assert!(accepted.is_err(), "no request, no upstream connection");
    private.stop().await;
    hyper.stop().await;
}

/// A socket paired with the private proxy (its token checked); the TerminateTLS server runs on
/// the other end.
async fn paired(private: &Private) -> TcpStream {
    let pairing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = [3u8; 32];
    private
        .incoming(pairing.local_addr().unwrap(), token)
        .await
        .unwrap();
    let (mut s, _) = pairing.accept().await.unwrap();
    let mut got = [0u8; 32];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, token);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_connection_without_traffic_is_cut_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let internal = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = private_settings(dir.path(), hyper.addr, internal.local_addr().unwrap());
    settings.internal_endpoint.idle_timeout = DEADLINE;
    let private = Private::start(&settings, false).await;
    private.announce().await;

    // ForwardTLS: the paired socket is piped to the internal server, both ways.
    let mut paired = paired(&private).await;
    let (mut server, _) = tokio::time::timeout(LATEST, internal.accept())
        .await
        .expect("the forward dials the internal endpoint")
        .unwrap();
    paired.write_all(b"client hello").await.unwrap();
    let mut buf = [0u8; 12];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"client hello");
    server.write_all(b"server hello").await.unwrap();
    paired.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"server hello");
    // Then silence both ways (a client that stops after its hello): both sockets are closed
    // once no byte moved for the idle timeout, not before.
    let last_byte = Instant::now();
    let waited = closed_after(&mut paired, last_byte).await;
    assert!(
        waited >= EARLIEST,
        "cut after {waited:?}, idle timeout {DEADLINE:?}"
    );
    closed_after(&mut server, last_byte).await;
    private.stop().await;
    hyper.stop().await;
}

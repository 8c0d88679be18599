//! `sd` restarts without refusing or cutting a call when systemd holds its socket: the test plays
//! systemd (binds the listening socket, passes it as fd 3 with `LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`), restarts sd (SIGTERM, start again on the same socket) while a client calls
//! in a loop on a new connection each time, and counts refusals and failed calls: none (the kernel
//! queues connections in the socket's backlog while no process accepts; the old process serves
//! every connection it accepted). Two hostile clients hold connections across the stop: an idle
//! keep-alive, closed at once, and half a request, cut at the end of the grace (the request
//! timeout); neither fails a legitimate call nor holds the old process past that.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tandem_testkit::hostile::{COMPLETES, Caller, closed_by_server, src, tls_from};
use tandem_testkit::pki::TestPki;
use tandem_testkit::process::STOP_TIMEOUT;
use tandem_testkit::sd::OPS;
use tokio::io::AsyncWriteExt;

use crate::support::reload::*;

/// The old sd's request timeout, which is its shutdown grace.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The connection deadlines (handshake, first request, header) a half request would otherwise
/// hold the old sd for: its exit must come well before.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

// Multi-threaded: the test's blocking waits for processes must not freeze the client (a frozen
// client holds a connection the old process then waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_an_inherited_socket_refuses_and_cuts_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let limits = format!(
        "limits:\n  request_timeout: {}\n",
        REQUEST_TIMEOUT.as_secs()
    );
    let role = live_role(dir.path(), &pki, &limits);
    // systemd's part: the socket outlives every sd process.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();

    let mut first = spawn_activated_sd(&role, &socket);
    let logged = first.wait_for_addresses(&["sd listening"])[0];
    assert_eq!(logged, addr, "sd serves the inherited socket");
    assert!(
        first
            .log
            .iter()
            .any(|l| l.contains("adopted an inherited listening socket")),
        "{:#?}",
        first.log
    );

    let tls =
        tandem_net::tls::client_config(&pki.client_tls_settings("hd-1", "sd-1"), &[b"http/1.1"])
            .unwrap();
    // The hostile clients: an idle keep-alive and half a request head.
    let mut idle = Caller::connect(src(3), addr, tls.clone(), "sd-1")
        .await
        .unwrap();
    let (status, _) = idle.call("getTip", serde_json::json!({})).await.unwrap();
    assert_eq!(status, 200);
    let mut half = tls_from(src(4), addr, tls.clone(), "sd-1").await.unwrap();
    half.write_all(b"POST /jsonrpc HTTP/1.1\r\nhost: localhost\r\ncontent-type: appl")
        .await
        .unwrap();
    half.flush().await.unwrap();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (tally, stop, tls) = (tally.clone(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            let mut turn = 0u8;
            while !stop.load(Ordering::Relaxed) {
                // A new connection every call, each meeting whichever process accepts now; the
                // sources rotate so that no per-source accept rate is reached.
                turn = turn.wrapping_add(1);
                let source = src(10 + turn % 32);
                match tandem_testkit::hostile::connect_from(source, addr).await {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        tally.refused();
                        continue;
                    }
                    _ => {}
                }
                let outcome = match Caller::connect(source, addr, tls.clone(), "sd-1").await {
                    Some(mut caller) => caller.call("getTip", serde_json::json!({})).await,
                    None => Err("connection refused or cut".to_owned()),
                };
                tally.count(match outcome {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                });
            }
        })
    };
    tally.served_beyond(3).await;

    // The restart: SIGTERM, the old process drains and exits, a new one starts on the same socket.
    let stopped_at = Instant::now();
    first.sigterm();
    idle.closed().await;
    assert!(
        !tandem_testkit::hostile::is_closed(&mut half).await,
        "the idle keep-alive is closed at once, before the grace ends"
    );
    closed_by_server(&mut half)
        .await
        .expect("the half request is cut at the end of the grace");
    let status = first.wait_exit(STOP_TIMEOUT);
    let stopping = stopped_at.elapsed();
    assert!(status.success(), "sd exits 0 on SIGTERM: {status}");
    assert!(
        stopping < CONNECTION_DEADLINE,
        "hostile connections held the old sd {stopping:?}, past its grace of {REQUEST_TIMEOUT:?}"
    );
    let before = tally.served();
    let mut second = spawn_activated_sd(&role, &socket);
    assert_eq!(second.wait_for_addresses(&["sd listening"])[0], addr);
    tally.served_beyond(before + 3).await;

    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(COMPLETES, client)
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "first sd:\n{}\nsecond sd:\n{}",
        first.log.join("\n"),
        second.log.join("\n")
    );
    tally.assert_clean("sd", &logs);
    second.terminate();
}

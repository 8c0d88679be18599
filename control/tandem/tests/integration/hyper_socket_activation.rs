//! `hyper server run` restarts without refusing or cutting a call when systemd holds its sockets:
//! the test plays systemd for hd-1 (binds its `grpc_server` and `jsonrpc_server` sockets and
//! passes them as fds 3 and 4 with `LISTEN_FDNAMES=grpc_server:jsonrpc_server`), then restarts
//! hd-1 (SIGTERM, start again on the same sockets) while two clients call in a loop: a local app
//! on hd-1's JSON-RPC gateway with a new connection every call, and a gRPC client with hd-2's
//! certificate whose cached channel to hd-1's `grpc_server` gets a GOAWAY from the old process
//! and reconnects to the new one. No connection is refused and every call is answered.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use tandem_settings::TlsSettings;
use tandem_testkit::grpc;
use tandem_testkit::hostile::{COMPLETES, Caller, connect_from, src};
use tandem_testkit::process::STOP_TIMEOUT;

use crate::support::reload::{Tally, spawn_activated};
use crate::support::seed::{HYPER, Layout, SD, spawn};

/// A client of `role`'s gateway as the local app (the role's own certificate, named `role`).
fn tls_settings(layout: &Layout, role: &str) -> TlsSettings {
    let certs = layout.root().join("certs");
    TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join(format!("{role}.crt"))),
        key_file: Some(certs.join(format!("{role}.key"))),
        server_name: Some(role.into()),
        verify_client: true,
        request_client_cert: false,
        insecure_skip_verify: false,
    }
}

/// Calls `hd-1._ping` on hd-1's gateway in a loop, a new connection each time (sources rotate so
/// that no per-source accept rate is reached), until `stop`.
async fn gateway_caller(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut turn = 0u8;
    while !stop.load(Ordering::Relaxed) {
        turn = turn.wrapping_add(1);
        let source = src(10 + turn % 32);
        if let Err(e) = connect_from(source, addr).await
            && e.kind() == std::io::ErrorKind::ConnectionRefused
        {
            tally.refused();
            continue;
        }
        let outcome = match Caller::connect(source, addr, tls.clone(), "hd-1").await {
            Some(mut caller) => caller.call("hd-1._ping", json!({})).await,
            None => Err("connection refused or cut".to_owned()),
        };
        tally.count(match outcome {
            Ok((200, body)) if body["result"]["serverInfo"]["name"] == "hd-1" => Ok(()),
            other => Err(format!("gateway: {other:?}")),
        });
    }
}

/// Calls `hd-1._ping` as hd-2 over one cached gRPC channel to hd-1's `grpc_server` in a loop,
/// until `stop`: the old process's GOAWAY makes the channel reconnect, to whichever process
/// accepts then. A call the channel never sent (it went to the connection as the GOAWAY came) is
/// sent again once, as gRPC clients do ("transparent retry"); any other failure counts.
async fn grpc_caller(
    mut channel: grpc::RawClient,
    tally: Arc<Tally>,
    resent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let mut outcome = grpc::ping(&mut channel, "hd-2", "hd-1", n).await;
        if let Err(grpc::PingError::NeverSent(_)) = outcome {
            resent.fetch_add(1, Ordering::Relaxed);
            outcome = grpc::ping(&mut channel, "hd-2", "hd-1", n).await;
        }
        tally.count(match outcome {
            Ok(name) if name == "hd-1" => Ok(()),
            other => Err(format!("gRPC: {other:?}")),
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_restart_on_inherited_sockets_refuses_and_cuts_no_call() {
    let layout = Layout::new();
    let mut sd = spawn("sd", SD, &["run"], &layout.env_with("SD_SETTINGS", "sd-1"));
    sd.wait_for("sd listening");
    layout.sd_setup();
    // systemd's part: hd-1's sockets, on the ports its role and the directory name.
    let bind = |var: &str| std::net::TcpListener::bind(("127.0.0.1", layout.ports[var])).unwrap();
    let grpc = bind("TANDEM_TEST_HD1_GRPC_PORT");
    let jsonrpc = bind("TANDEM_TEST_HD1_JSONRPC_PORT");
    let gateway = jsonrpc.local_addr().unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let env = layout.env_with("HYPER_SETTINGS", "hd-1");
    let sockets = [("grpc_server", &grpc), ("jsonrpc_server", &jsonrpc)];
    let start_hd1 = || {
        let mut hd1 = spawn_activated("hd-1", HYPER, &["server", "run"], &env, &sockets);
        hd1.wait_for("hyper server running");
        hd1
    };
    let mut first = start_hd1();
    let adopted = first
        .log
        .iter()
        .filter(|l| l.contains("serving an inherited socket"))
        .count();
    assert_eq!(adopted, 2, "{}", first.log.join("\n"));
    let tls = tls_settings(&layout, "hd-1");
    let tls = tandem_net::tls::client_config(&tls, &[b"http/1.1"]).unwrap();
    let mut as_hd2 = tls_settings(&layout, "hd-2");
    as_hd2.server_name = Some("hd-1".into());
    let channel = grpc::raw_client(&as_hd2, &grpc_addr.to_string(), "hd-1").await;

    let (via_gateway, via_grpc) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let resent = Arc::new(AtomicU64::new(0));
    let callers = [
        tokio::spawn(gateway_caller(
            gateway,
            tls,
            via_gateway.clone(),
            stop.clone(),
        )),
        tokio::spawn(grpc_caller(
            channel,
            via_grpc.clone(),
            resent.clone(),
            stop.clone(),
        )),
    ];
    // Refusals on the gRPC socket too: a raw connection in a loop.
    let grpc_refusals = Arc::new(Tally::default());
    let dialer = {
        let (tally, stop) = (grpc_refusals.clone(), stop.clone());
        tokio::spawn(async move {
            // One dial per 5 ms at most: a steady probe, not a flood.
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                if let Err(e) = connect_from(src(5), grpc_addr).await
                    && e.kind() == std::io::ErrorKind::ConnectionRefused
                {
                    tally.refused();
                }
            }
        })
    };
    via_gateway.served_beyond(3).await;
    via_grpc.served_beyond(3).await;

    first.sigterm();
    let status = first.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "hyper exits 0 on SIGTERM: {status}");
    let before = (via_gateway.served(), via_grpc.served());
    let second = start_hd1();
    via_gateway.served_beyond(before.0 + 3).await;
    via_grpc.served_beyond(before.1 + 3).await;

    stop.store(true, Ordering::Relaxed);
    for task in callers.into_iter().chain([dialer]) {
        tokio::time::timeout(COMPLETES, task)
            .await
            .unwrap()
            .unwrap();
    }
    let logs = format!(
        "first hd-1:\n{}\nsecond hd-1:\n{}",
        first.log.join("\n"),
        second.log.join("\n")
    );
    eprintln!(
        "gRPC calls sent again after a GOAWAY: {}",
        resent.load(Ordering::Relaxed)
    );
    via_gateway.assert_clean("hd-1's gateway", &logs);
    via_grpc.assert_clean("hd-1's gRPC server", &logs);
    grpc_refusals.assert_clean("hd-1's gRPC socket", &logs);
    assert!(second.terminate().success());
}

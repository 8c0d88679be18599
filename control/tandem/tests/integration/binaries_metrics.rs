//! The real binaries serve the `metrics:` block of their settings: `proxy run public` and
//! `hyper server run` log `metrics listening`, answer `/healthz`, `/readyz` and `/metrics` (parsed
//! strictly, with the role's families), and still exit 0 on SIGTERM.
#![allow(clippy::unwrap_used)]

use crate::support::seed;
use tandem_testkit::metrics;

use std::net::SocketAddr;

use metrics::{families, get, parse_prometheus};
use seed::{HYPER, Layout, PROXY, Proc, spawn};

const METRICS: &str = "metrics:\n  bind_address: \"127.0.0.1:0\"\n";

/// Waits for `metrics listening` and returns its address.
fn metrics_addr(proc: &mut Proc) -> SocketAddr {
    let line = proc.wait_for("metrics listening");
    let addr = line
        .split("address=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    addr.parse().unwrap()
}

async fn check(addr: SocketAddr, expect: &[&str]) {
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // The metrics port opens before the process starts serving: /readyz is the signal to wait for
    // (bounded).
    tandem_testkit::poll::until(
        "/readyz turning 200 once serving",
        tandem_testkit::poll::POLL_BOUND,
        || async { (get(addr, "/readyz").await.0 == 200).then_some(()) },
    )
    .await;
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    parse_prometheus(&text);
    let families = families(&text);
    for family in expect {
        assert!(
            families.iter().any(|f| f == family),
            "{family} missing:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_and_hyper_binaries_serve_their_metrics_settings() {
    let layout = Layout::new();
    for role in ["public-proxy-1", "hd-1"] {
        std::fs::write(layout.role(role).join("900_metrics.yml"), METRICS).unwrap();
    }
    std::fs::create_dir_all(layout.root().join("data")).unwrap();

    let mut proxy = spawn(
        "proxy",
        PROXY,
        &["run", "public"],
        &layout.env_with("PROXY_SETTINGS", "public-proxy-1"),
    );
    let addr = metrics_addr(&mut proxy);
    check(
        addr,
        &[
            "engine_paired",
            "engine_pair_setup_seconds",
            "proxy_pairs_requested",
        ],
    )
    .await;
    assert!(proxy.terminate().success(), "proxy exits 0 on SIGTERM");

    // No sd runs: the server starts and serves its metrics all the same.
    let mut hyper = spawn(
        "hyper",
        HYPER,
        &["server", "run"],
        &layout.env_with("HYPER_SETTINGS", "hd-1"),
    );
    let addr = metrics_addr(&mut hyper);
    check(addr, &["hyper_broker_in_flight", "directory_records"]).await;
    assert!(hyper.terminate().success(), "hyper exits 0 on SIGTERM");
}

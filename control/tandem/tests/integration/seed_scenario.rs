//! The seed scenario with the real binaries and the test roles: a local app calls `hd-2._ping` on
//! hd-1's JSON-RPC gateway; hd-2 is reachable only through `public-proxy-1.ga`, so hd-1 asks the proxy
//! for a connection, the proxy pairs hd-1's and hd-2's connections in its io_uring engine, and the
//! answer comes back over the spliced, end-to-end mTLS gRPC channel. A second call reuses it.
#![allow(clippy::unwrap_used)]

use crate::support::seed;

use seed::*;
use serde_json::{Value, json};
use tandem_net::jsonrpc::params;

/// `proxy ctl stats --json` against the test proxy: the engine's per-core counters.
fn proxy_stats(layout: &Layout) -> Value {
    let mut args = layout.ctl_args();
    args.extend(["stats".into(), "--json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(std::path::Path::new(PROXY), &args, &[]);
    serde_json::from_str(&out).unwrap()
}

fn total(stats: &Value, key: &str) -> u64 {
    stats["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[key].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hd1_pings_hd2_through_the_public_proxy_and_reuses_the_channel() {
    seed_scenario(Layout::new()).await;
}

/// The same mesh with every listener, dial and directory address on `[::1]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_runs_over_ipv6_loopback() {
    seed_scenario(Layout::ipv6()).await;
}

async fn seed_scenario(layout: Layout) {
    let mut sd = spawn("sd", SD, &["run"], &layout.env_with("SD_SETTINGS", "sd-1"));
    sd.wait_for("sd listening");
    layout.sd_setup();

    let mut proxy = spawn(
        "proxy",
        PROXY,
        &["run", "public"],
        &layout.env_with("PROXY_SETTINGS", "public-proxy-1"),
    );
    proxy.wait_for("public proxy started");
    let mut pph = spawn(
        "public-proxy-hyper-1",
        HYPER,
        &["server", "run"],
        &layout.env_with("HYPER_SETTINGS", "public-proxy-hyper-1"),
    );
    pph.wait_for("hyper server running");
    let mut hd2 = spawn(
        "hd-2",
        HYPER,
        &["server", "run"],
        &layout.env_with("HYPER_SETTINGS", "hd-2"),
    );
    hd2.wait_for("hyper server running");
    // hd-2 cannot be dialed: the proxy's Hyper node must hold hd-2's reverse stream before hd-1 asks.
    pph.wait_for("reverse stream opened operator=hd-2");
    let mut hd1 = spawn(
        "hd-1",
        HYPER,
        &["server", "run"],
        &layout.env_with("HYPER_SETTINGS", "hd-1"),
    );
    hd1.wait_for("hyper server running");
    // hd-1's gateway takes no client certificates (verify_client: false, as the original's dev
    // role): it warns at start that every caller acts as hd-1. The proxy's Hyper gateway checks
    // its callers (only the public proxy's pinned certificate is served) and does not warn.
    let unverified = |log: &[String]| log.iter().any(|l| l.contains("UNVERIFIED GATEWAY"));
    assert!(unverified(&hd1.log), "{}", hd1.log.join("\n"));
    assert!(!unverified(&pph.log), "{}", pph.log.join("\n"));

    let app = gateway(&layout);
    let ping = app
        .call("hd-2._ping", params([("hello", json!("world"))]))
        .await
        .unwrap();
    assert_eq!(ping["serverInfo"]["name"], "hd-2", "{ping}");
    assert_eq!(ping["params"]["_client"]["name"], "hd-1");
    assert_eq!(ping["params"]["hello"], "world");
    assert!(ping["timestamp"].as_str().is_some_and(|t| t.contains('T')));

    let stats = proxy_stats(&layout);
    assert_eq!(
        total(&stats, "paired"),
        1,
        "the call went through one engine pair: {stats}"
    );
    assert_eq!(total(&stats, "live_pairs"), 1, "{stats}");

    let again = app.call("hd-2._ping", params([])).await.unwrap();
    assert_eq!(again["serverInfo"]["name"], "hd-2");
    let stats = proxy_stats(&layout);
    assert_eq!(
        total(&stats, "paired"),
        1,
        "the second call reused the proxied channel: {stats}"
    );

    // SIGTERM drains the proxy and it exits 0.
    drop(hd1);
    assert!(proxy.terminate().success());
}

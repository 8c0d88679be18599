//! The fleet test bed (`make fleet`; see `support/fleet_bed.rs`): a proxy operator as three nodes
//! in network namespaces of their own, Redis with Sentinel, two sd instances, hd-1 and hd-2.
//!
//! - Pairs from hd-1 towards hd-2 spread over the three nodes: hd-1's calls to hd-2 share one
//!   cached channel (one pair), so the spread is measured on what creates pairs: 30
//!   `public-proxy-1.ga.requestConnection {to: hd-2}` calls through hd-1's gateway. Each offer names
//!   the endpoint of the node that issued it, every node issues some, and each node's engine
//!   counts hd-2 joining its side there (hd-2 is told the same endpoint).
//! - `kill -9` of the node carrying hd-1's channel to hd-2 during a stream of calls: calls fail for
//!   at most the deadline of the calls in flight, then succeed through another node; no call hangs.
//!   The numbers (calls failed, time to recover) are printed.
//! - The Redis primary killed: Sentinel promotes the replica, calls continue, and sd takes
//!   directory submissions again; acknowledged records are still there.
//!
//! - sd-a and sd-b take concurrent submissions on one parent: exactly one wins per round, both
//!   serve it (`fleet_sd.rs`).
//!
//! The announcement case is in `fleet_announce.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_net::jsonrpc::params;
use tandem_testkit::poll::{POLL_BOUND, until_blocking};

use crate::support::fleet_bed::{Bed, NODES, host};

/// hd-1's deadline of one gRPC call (the test roles keep the default `timeouts.call`).
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Room for a loaded machine on top of a deadline.
pub(crate) const SLACK: Duration = Duration::from_secs(10);
/// `requestConnection` calls in the spread check: with three equally idle nodes the chance that
/// one gets none is 3·(2/3)^30 < 2·10⁻⁵.
const SPREAD_CALLS: usize = 30;

fn total(stats: &Value, key: &str) -> u64 {
    stats["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[key].as_u64().unwrap())
        .sum()
}

/// One call of a stream: when it started (since the stream began), how long it took, its outcome.
#[derive(Debug, Clone)]
struct Outcome {
    at: Duration,
    took: Duration,
    error: Option<String>,
}

/// Callers in a [`CallStream`]: a few at once, so calls are in flight when something dies.
const STREAM_CALLERS: usize = 4;

/// A stream of `hd-2._ping` calls through hd-1's gateway ([`STREAM_CALLERS`] callers, each one
/// call after the other), until stopped.
struct CallStream {
    began: Instant,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CallStream {
    fn start(bed: &Bed) -> Self {
        let began = Instant::now();
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, halt) = (outcomes.clone(), stop.clone());
        let thread = bed.spawn_in_hd1(move |app| async move {
            let app = Arc::new(app);
            let mut callers = tokio::task::JoinSet::new();
            for _ in 0..STREAM_CALLERS {
                let (app, out, halt) = (app.clone(), out.clone(), halt.clone());
                callers.spawn(async move {
                    // A gentle pace: a stream, not a flood (at most one call per 10 ms).
                    let mut pace = tokio::time::interval(Duration::from_millis(10));
                    while !halt.load(Ordering::Relaxed) {
                        pace.tick().await;
                        let start = Instant::now();
                        let result = app.call("hd-2._ping", params([])).await;
                        let error = match result {
                            Ok(answer) if answer["serverInfo"]["name"] == "hd-2" => None,
                            Ok(answer) => Some(format!("unexpected answer {answer}")),
                            Err(e) => Some(e.to_string()),
                        };
                        out.lock().unwrap().push(Outcome {
                            at: start - began,
                            took: start.elapsed(),
                            error,
                        });
                    }
                });
            }
            while callers.join_next().await.is_some() {}
        });
        Self {
            began,
            outcomes,
            stop,
            thread: Some(thread),
        }
    }

    fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` calls started after `since` succeeded.
    fn wait_successes_after(&self, since: Duration, n: usize, what: &str) {
        until_blocking(what, Duration::from_secs(120), || {
            let ok = self
                .snapshot()
                .iter()
                .filter(|o| o.at >= since && o.error.is_none())
                .count();
            (ok >= n).then_some(())
        });
    }

    fn stop(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.snapshot()
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The node whose engine relays hd-1's channel to hd-2 (the one live pair of the fleet).
fn carrying_node(bed: &Bed, skip: Option<usize>) -> usize {
    until_blocking("a node relays hd-1's channel", POLL_BOUND, || {
        (0..NODES)
            .filter(|n| Some(*n) != skip)
            .find(|&n| total(&bed.node_stats(n), "live_pairs") > 0)
    })
}

fn spread(bed: &Bed) {
    let before: Vec<u64> = (0..NODES)
        .map(|n| total(&bed.node_stats(n), "accepted"))
        .collect();
    let endpoints = bed.in_hd1(|app| async move {
        let mut endpoints = Vec::new();
        for _ in 0..SPREAD_CALLS {
            let offer = app
                .call(
                    "public-proxy-1.ga.requestConnection",
                    params([("to", json!("hd-2")), ("channel", json!("grpc_server"))]),
                )
                .await
                .unwrap();
            endpoints.push(offer["endpoint"].as_str().unwrap().to_owned());
        }
        endpoints
    });
    let mut per_node = BTreeMap::new();
    for endpoint in &endpoints {
        *per_node.entry(endpoint.clone()).or_insert(0u64) += 1;
    }
    println!("fleet: requestConnection offers per node endpoint: {per_node:?}");
    for (n, before) in before.iter().enumerate() {
        let endpoint = format!("{}:9999", bed.addr(host::NODES[n]));
        let issued = per_node.get(&endpoint).copied().unwrap_or(0);
        assert!(issued > 0, "node {} issued no pair: {per_node:?}", n + 1);
        // hd-2 was told the same endpoint and joined its side there: the node's engine took it.
        until_blocking("hd-2 joins each pair on its node", POLL_BOUND, || {
            let accepted = total(&bed.node_stats(n), "accepted") - before;
            (accepted >= issued).then_some(())
        });
    }
}

fn kill_a_node_under_calls(bed: &mut Bed) {
    let stream = CallStream::start(bed);
    stream.wait_successes_after(Duration::ZERO, 5, "calls flow before the kill");
    let victim = carrying_node(bed, None);
    let killed_at = stream.began.elapsed();
    bed.kill_node(victim);
    stream.wait_successes_after(killed_at, 10, "calls succeed again after the kill");
    let outcomes = stream.stop();
    let after: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.at + o.took >= killed_at)
        .collect();
    let failed: Vec<&&Outcome> = after.iter().filter(|o| o.error.is_some()).collect();
    let first_ok = after
        .iter()
        .find(|o| o.error.is_none() && o.at >= killed_at)
        .unwrap();
    let recovered = (first_ok.at + first_ok.took).saturating_sub(killed_at);
    let last_failure_end = failed
        .iter()
        .map(|o| (o.at + o.took).saturating_sub(killed_at))
        .max()
        .unwrap_or_default();
    println!(
        "fleet: kill -9 of node {} under a call stream: {} calls after the kill, {} failed, \
         recovered after {:.2?} (last failure ended {:.2?} after the kill); failures: {:?}",
        victim + 1,
        after.len(),
        failed.len(),
        recovered,
        last_failure_end,
        failed
            .iter()
            .map(|o| o.error.as_deref().unwrap_or(""))
            .collect::<Vec<_>>()
    );
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap();
    assert!(
        slowest <= CALL_DEADLINE + SLACK,
        "no call hangs: the slowest took {slowest:?}"
    );
    assert!(
        last_failure_end <= CALL_DEADLINE + SLACK,
        "calls fail only while the calls in flight run out: the last failure ended \
         {last_failure_end:?} after the kill"
    );
    let carrier = carrying_node(bed, Some(victim));
    assert_ne!(carrier, victim);
}

fn redis_failover_under_calls(bed: &mut Bed) {
    let replica = bed.lan.host(host::REDIS_REPLICA).addr;
    let primary = bed.lan.host(host::REDIS_PRIMARY).addr;
    assert_eq!(bed.sentinel_primary(), Some(primary));
    let stored = |bed: &Bed, host: usize| -> u64 {
        let out = bed.redis_cli(host, 6379, &["llen", "fleet-entries"]);
        out.trim().parse().unwrap()
    };
    let before = stored(bed, host::REDIS_PRIMARY);
    assert!(before > 0, "the directory lives in Redis");

    let stream = CallStream::start(bed);
    stream.wait_successes_after(Duration::ZERO, 3, "calls flow before the failover");
    let killed_at = stream.began.elapsed();
    bed.kill_redis_primary();
    until_blocking(
        "Sentinel promotes the replica",
        Duration::from_secs(120),
        || (bed.sentinel_primary() == Some(replica)).then_some(()),
    );
    let promoted_after = stream.began.elapsed() - killed_at;
    assert!(
        stored(bed, host::REDIS_REPLICA) >= before,
        "every acknowledged entry is on the promoted replica"
    );
    // sd finds the new primary through Sentinel and acknowledges submissions again.
    let record = json!({"records": [{
        "name": "hd-1",
        "section": "groups",
        "data": ["health-departments", "fleet-after-failover"],
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }]});
    let mut last_error = String::new();
    let acknowledged = until_blocking(
        "sd acknowledges after the failover",
        POLL_BOUND,
        || match bed.submit_records("after-failover", &record) {
            Ok(()) => Some(stream.began.elapsed() - killed_at),
            Err(e) => {
                last_error = e;
                None
            }
        },
    );
    assert!(
        stored(bed, host::REDIS_REPLICA) > before,
        "the acknowledged submission is on the new primary"
    );
    stream.wait_successes_after(
        killed_at + promoted_after,
        5,
        "calls continue after the failover",
    );
    let outcomes = stream.stop();
    let failed = outcomes
        .iter()
        .filter(|o| o.at + o.took >= killed_at && o.error.is_some())
        .count();
    println!(
        "fleet: Redis primary killed: Sentinel promoted the replica after {promoted_after:.2?}, \
         sd acknowledged a submission after {acknowledged:.2?}; {failed} calls failed meanwhile \
         (last submission error before success: {last_error:?})"
    );
    assert_eq!(failed, 0, "calls do not depend on Redis");
}

#[test]
fn a_fleet_spreads_pairs_and_survives_a_dead_node_and_a_redis_failover() {
    let mut bed = Bed::start();
    // hd-2 is reachable only through the proxy: nothing answers at its address on the LAN.
    let hd2 = std::net::SocketAddr::from((bed.addr(host::HD2), 8888));
    let direct = bed.in_hd1(move |_| async move { tokio::net::TcpStream::connect(hd2).await });
    assert!(direct.is_err(), "hd-2's gRPC port is not on the LAN");
    let ping = bed.in_hd1(|app| async move { app.call("hd-2._ping", params([])).await });
    assert_eq!(ping.unwrap()["serverInfo"]["name"], "hd-2");
    spread(&bed);
    crate::fleet_sd::two_sd_take_one_submission_per_parent(&bed);
    kill_a_node_under_calls(&mut bed);
    redis_failover_under_calls(&mut bed);
}

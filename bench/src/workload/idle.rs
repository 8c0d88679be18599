//! `idle`: open N pairs, check the last one relays, leave them idle (for a relay that parks
//! quiet pairs, until they are parked), and report the relay's RSS, open fds and io-wq
//! (`iou-wrk-*`) threads, before and after, and the cost per pair.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::net::echo_through;
use crate::procfs::{Resources, nofile_limit, resources, rss_by_kind};
use crate::target::Target;

/// Fds this process keeps for everything but the pairs (stdio, listeners, the engine's rings
/// and eventfds, pooled pipes in use, the baseline's pipes): 512 leaves room for all of them.
const FD_RESERVE: u64 = 512;

/// Settings of one idle run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleSettings {
    /// Pairs asked for.
    pub pairs: usize,
}

/// Figures of one idle run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleResult {
    /// Pairs asked for.
    pub pairs_offered: usize,
    /// Pairs actually held (the fd limit of this process may cap it: see `limit_note`).
    pub pairs_held: usize,
    /// Why fewer pairs were held than offered, if they were.
    pub limit_note: Option<String>,
    /// The relay before opening the pairs.
    pub before: Resources,
    /// The relay holding the pairs.
    pub after: Resources,
    /// RSS growth, bytes.
    pub rss_growth_bytes: i64,
    /// RSS growth per pair, bytes.
    pub rss_per_pair_bytes: f64,
    /// RSS growth scaled to 10,000 pairs, MiB (the target unit).
    pub rss_growth_per_10k_mib: f64,
    /// RSS growth by kind of mapping (heap, anon, stack, file), bytes; measured for the
    /// in-process engine only (this process), where it shows where a pair's memory goes.
    pub rss_growth_by_kind: std::collections::BTreeMap<String, i64>,
    /// Pairs the relay held parked (no task) when the RSS was read, for a relay that parks
    /// quiet pairs (Tandem: after `park_after`, which the run waits out first).
    #[serde(default)]
    pub pairs_parked: Option<u64>,
    /// Whether the relay's figures include this harness (in-process Tandem: RSS and fds are
    /// the whole process's, client sockets included).
    pub shares_process_with_harness: bool,
}

/// Returns the free allocator memory of this process to the kernel before the first reading,
/// so every run starts from the same state (glibc `malloc_trim`, every arena). The reading with
/// the pairs held takes no such step: a relay keeps what it does not give back itself.
fn settle_allocator() {
    tandem_proxy::memory::release_memory();
}

/// Bound on waiting for the pairs to park beyond `park_after` (the core's tick parks them
/// within ~100 ms of it; a loaded machine may take longer): past it the reading is taken
/// with the pairs parked so far, and the report says how many.
const PARK_SETTLE: Duration = Duration::from_secs(30);

/// For a relay that parks quiet pairs: waits until the `n` idle pairs are parked (bounded by
/// `park_after` + [`PARK_SETTLE`]), so that the reading is of idle pairs as the relay keeps
/// them. Returns the pairs parked then.
fn wait_until_parked(target: &dyn Target, n: u64) -> Option<u64> {
    let after = target.park_after()?;
    let deadline = Instant::now() + after + PARK_SETTLE;
    loop {
        let parked = target.parked_pairs()?;
        if parked >= n || Instant::now() >= deadline {
            return Some(parked);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pairs of the warm-up run before the first reading.
const WARMUP_PAIRS: usize = 16;

/// Runs the relay's whole idle path once on a few pairs before the first reading (open, relay,
/// park where the relay parks, wake, close), so that what is paid once per process (code pages
/// first executed, lazily built tables) is not counted per pair: with 4,872 pairs (the fd limit)
/// a fixed 0.5 MB read as 1 MiB per 10,000 pairs.
fn warm_up(target: &dyn Target) -> anyhow::Result<()> {
    let mut pairs = Vec::with_capacity(WARMUP_PAIRS);
    for _ in 0..WARMUP_PAIRS {
        pairs.push(target.open_pair()?);
    }
    for (a, b) in &mut pairs {
        echo_through(a, b, b"warm-up")?;
    }
    wait_until_parked(target, WARMUP_PAIRS as u64);
    for (a, b) in &mut pairs {
        echo_through(a, b, b"warm-up")?;
    }
    drop(pairs);
    Ok(())
}

/// Bound on waiting for the relay's own memory release after the pairs parked.
const RELEASE_SETTLE: Duration = Duration::from_secs(5);

/// For a relay that returns memory after parking: waits (bounded) until it did so once more
/// after the last pair parked, so that the reading is of what it keeps.
fn wait_for_release(target: &dyn Target) {
    let Some(start) = target.memory_releases() else {
        return;
    };
    let deadline = Instant::now() + tandem_engine::RELEASE_MEMORY_EVERY + RELEASE_SETTLE;
    while Instant::now() < deadline {
        if target.memory_releases().is_some_and(|n| n > start) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fds one pair costs this process: client ends always; relay ends too when in process.
fn fds_per_pair(target: &dyn Target) -> u64 {
    if target.system().is_tandem() { 4 } else { 2 }
}

/// Runs the workload against `target`.
pub fn run(target: &dyn Target, s: &IdleSettings) -> anyhow::Result<IdleResult> {
    let per = fds_per_pair(target);
    let room = (nofile_limit().saturating_sub(FD_RESERVE) / per) as usize;
    let cap = target.max_pairs().unwrap_or(usize::MAX);
    let n = s.pairs.min(room).min(cap);
    let limit_note = if n == cap && n < s.pairs {
        Some(format!(
            "the relay's configured connection limit allows {cap} pairs"
        ))
    } else if n < s.pairs {
        Some(format!(
            "RLIMIT_NOFILE {} allows {room} pairs at {per} fds per pair in this process; see bench/README.md for the settings",
            nofile_limit()
        ))
    } else {
        None
    };
    let in_process = target.system().is_tandem();
    let probe = || {
        target
            .relay_resources()
            .unwrap_or_else(|| resources("self"))
    };
    warm_up(target)?;
    // The harness's own per-pair state is allocated before the first reading.
    let mut held: Vec<(TcpStream, TcpStream)> = Vec::with_capacity(n);
    settle_allocator();
    let kinds0 = in_process.then(|| rss_by_kind("self"));
    let before = probe();
    for _ in 0..n {
        held.push(target.open_pair()?);
    }
    if let Some((a, b)) = held.last_mut() {
        echo_through(a, b, b"idle-check")?;
    }
    if let Some((a, b)) = held.first_mut() {
        echo_through(a, b, b"idle-check")?;
    }
    let pairs_parked = wait_until_parked(target, n as u64);
    // No trim of ours here: what the relay keeps is what it gives back itself (the in-process
    // engine releases after parking, as the proxy binary does; wait for that release).
    wait_for_release(target);
    let after = probe();
    let kinds1 = in_process.then(|| rss_by_kind("self"));
    drop(held);
    let mut by_kind = std::collections::BTreeMap::new();
    if let (Some(k0), Some(k1)) = (kinds0, kinds1) {
        for (k, v) in &k1 {
            let v0 = k0.get(k).copied().unwrap_or(0);
            by_kind.insert(k.clone(), *v as i64 - v0 as i64);
        }
    }
    let growth = after.rss_bytes as i64 - before.rss_bytes as i64;
    let per_pair = if n > 0 { growth as f64 / n as f64 } else { 0.0 };
    Ok(IdleResult {
        pairs_offered: s.pairs,
        pairs_held: n,
        limit_note,
        before,
        after,
        rss_growth_bytes: growth,
        rss_per_pair_bytes: per_pair,
        rss_growth_per_10k_mib: per_pair * 10_000.0 / (1024.0 * 1024.0),
        rss_growth_by_kind: by_kind,
        pairs_parked,
        shares_process_with_harness: in_process,
    })
}

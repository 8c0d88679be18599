//! 10,000 idle pairs must not hold io-wq kernel threads: readiness waits are polls, not
//! parked splice ops.
//!
//! The client sockets live in child processes (this test binary re-run as `idle_child` with
//! [`CHILD_ENV`] set), so this process holds only the engine's 2 fds per pair and the fd
//! limit of one process fits twice as many pairs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::*;
use tandem_engine::{Driver, EngineConfig, EngineError, EngineHandle, PairEvent, PairKind, Token};

/// Pairs the issue asks for.
const PAIRS: usize = 10_000;
/// Fds a process needs besides its 2 per pair, in fds: stdio and the harness (~5), per core a
/// listener, a ring or epoll fd and an eventfd (~4 per core), one leased pipe (2), 3 pipes per
/// child; 256 covers them with room for the runtime's own.
const RESERVE: u64 = 256;
/// Environment variable that turns the `idle_child` test into a client-holding child; its
/// value is the engine's pairing address.
const CHILD_ENV: &str = "TANDEM_IDLE_CHILD_ADDR";
/// Line a child prints once all its pairs are dialled and its last pair relayed a ping-pong.
const READY: &str = "IDLE-CHILD-READY";
/// Bound on the whole setup of one driver's run (dialling ~20,000 sockets on 2 cores): only a
/// hang detector, generous so that a loaded machine is never called hung; the pairs' tokens
/// live as long (`pair_ttl`) and the pairs are never cut for idling, so slowness cannot fail it.
const SETUP: Duration = Duration::from_secs(300);

/// Raises RLIMIT_NOFILE to `want`, or, without CAP_SYS_RESOURCE, the soft limit to the hard
/// limit. Returns the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    let lim = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: setrlimit/getrlimit with valid rlimit structs.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        return want;
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) }, 0);
    cur.rlim_cur = cur.rlim_max;
    // SAFETY: as above; a soft limit up to the hard limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cur) }, 0);
    cur.rlim_cur
}

/// Socket fds of this process without FD_CLOEXEC (they would leak into every child).
fn inheritable_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            target.to_str()?.starts_with("socket:").then_some(fd)
        })
        // SAFETY: F_GETFD on a descriptor number only reads its flags (EBADF if it closed).
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == 0)
        .count()
}

/// Resident set size of this process, in bytes (`/proc/self/statm`, field 2, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf with a valid name has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Bytes allocated and in use by malloc over all arenas (glibc `mallinfo2().uordblks`): live
/// allocations, as opposed to RSS, which also counts what the allocator keeps after a free.
#[cfg(target_env = "gnu")]
fn malloc_in_use() -> u64 {
    // SAFETY: mallinfo2 takes no arguments and only reads allocator statistics.
    unsafe { libc::mallinfo2() }.uordblks as u64
}

/// Not available outside glibc; reported as 0.
#[cfg(not(target_env = "gnu"))]
fn malloc_in_use() -> u64 {
    0
}

/// Prints RSS growth since `base`, in total and per pair (a report, not an assertion: RSS
/// depends on the allocator and the machine).
fn report_rss(driver: Driver, what: &str, base: (u64, u64), pairs: usize) {
    let grown = rss_bytes().saturating_sub(base.0);
    let used = malloc_in_use().saturating_sub(base.1);
    let per_pair = |b: u64| b as f64 / 1024.0 / pairs.max(1) as f64;
    eprintln!(
        "{driver:?}: growth {what}: RSS {} KiB total, {:.1} KiB per pair; malloc in use {:.1} \
         KiB per pair ({pairs} pairs)",
        grown / 1024,
        per_pair(grown),
        per_pair(used)
    );
}

fn io_wq_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("iou-wrk"))
        .count()
}

/// A child holding the client sides of some pairs; it exits when its stdin closes.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The child exits on stdin EOF; kill is the fallback for a stuck one.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a child for `tickets` (token pairs); its READY line goes to `ready`.
fn spawn_holder(
    addr: SocketAddr,
    tickets: &[[Token; 2]],
    ready: &std::sync::mpsc::Sender<usize>,
) -> Holder {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "idle_pairs::idle_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let ready = ready.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test idle_child ... " on the same line first.
            if let Some(at) = line.find(READY) {
                let _ = ready.send(line[at + READY.len()..].trim().parse().unwrap_or(0));
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut msg = (tickets.len() as u64).to_le_bytes().to_vec();
    for [a, b] in tickets {
        msg.extend_from_slice(a.as_bytes());
        msg.extend_from_slice(b.as_bytes());
    }
    stdin.write_all(&msg).expect("send tokens to child");
    Holder {
        child,
        stdin: Some(stdin),
    }
}

fn create_pairs(h: &EngineHandle, n: usize) -> Vec<[Token; 2]> {
    (0..n)
        .map(|_| {
            loop {
                match h.create_pair(PairKind::Direct) {
                    Ok(t) => break [t.side_a, t.side_b],
                    Err(EngineError::MailboxFull { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .collect()
}

/// Waits (bounded by `deadline`) for one READY per child, then for `pairs` Paired events.
fn wait_all_paired(
    ready: &Receiver<usize>,
    events: &Receiver<PairEvent>,
    holders: &mut [Holder],
    pairs: usize,
    deadline: Instant,
) {
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut dialled = 0;
    for _ in 0..holders.len() {
        match ready.recv_timeout(left()) {
            Ok(n) => dialled += n,
            Err(_) => {
                let status: Vec<_> = holders.iter_mut().map(|h| h.child.try_wait()).collect();
                panic!("children not ready within {SETUP:?}: {status:?}");
            }
        }
    }
    assert_eq!(dialled, pairs, "children dialled");
    let mut paired = 0;
    while paired < pairs {
        match events.recv_timeout(left()) {
            Ok(PairEvent::Paired { .. }) => paired += 1,
            Ok(other) => panic!("unexpected event while idle: {other:?}"),
            Err(_) => panic!("{paired} of {pairs} pairs paired within {SETUP:?}"),
        }
    }
}

fn idle_pairs_hold_no_io_wq_threads(driver: Driver, soft: u64) {
    let per_process = ((soft.saturating_sub(RESERVE)) / 2) as usize;
    let pairs = PAIRS.min(per_process);
    eprintln!(
        "{driver:?}: holding {pairs} idle pairs (asked {PAIRS}; RLIMIT_NOFILE soft limit {soft} \
         minus {RESERVE} reserve, 2 engine fds per pair in this process allows {per_process})"
    );
    // A child holds 2 client fds per pair it serves, the same cap as ours: at least 2 children,
    // more if one would exceed it.
    let children = 2.max(pairs.div_ceil(per_process.max(1)));
    let cfg = EngineConfig {
        pair_ttl: SETUP,
        idle_timeout: None,
        ..config(driver)
    };
    let (h, events) = start(cfg);
    let addr = h.local_addrs().pairing;
    let base = (rss_bytes(), malloc_in_use());
    let tickets = create_pairs(&h, pairs);
    report_rss(
        driver,
        "from token creation to tokens registered",
        base,
        pairs,
    );
    let (ready_tx, ready) = channel();
    // Children spawned while the engine already holds sockets must not inherit them.
    let mut holders = Vec::with_capacity(children);
    for chunk in tickets.chunks(pairs.div_ceil(children)) {
        holders.push(spawn_holder(addr, chunk, &ready_tx));
    }
    wait_all_paired(&ready, &events, &mut holders, pairs, Instant::now() + SETUP);
    report_rss(driver, "from token creation to all pairs idle", base, pairs);

    assert_eq!(inheritable_sockets(), 0, "engine sockets lack FD_CLOEXEC");
    let stats = h.stats();
    let live: u64 = stats.iter().map(|s| s.live_pairs).sum();
    assert_eq!(
        live as usize, pairs,
        "live pairs in engine stats: {stats:?}"
    );
    let threads = io_wq_threads();
    eprintln!(
        "{driver:?}: {live} live pairs, {threads} iou-wrk threads, {} cores",
        h.cores()
    );
    assert!(
        threads <= 2 * h.cores(),
        "{threads} iou-wrk threads for {} cores",
        h.cores()
    );
    // Engine first: drain resets the pairs, so the clients leave no TIME_WAIT behind.
    h.shutdown().unwrap();
    drop(holders);
}

/// Environment variable naming one driver (`uring` or `epoll`) to run alone: the second
/// driver of a run reuses the allocator memory the first freed, which understates its RSS.
const DRIVER_ENV: &str = "TANDEM_IDLE_DRIVER";

/// Both drivers in one test, one after the other: they share the process's fd limit.
#[test]
fn idle_pairs_on_both_drivers() {
    let soft = raise_nofile(2 * PAIRS as u64 + RESERVE);
    let only = std::env::var(DRIVER_ENV).unwrap_or_default();
    if only != "epoll" {
        idle_pairs_hold_no_io_wq_threads(Driver::IoUring, soft);
    }
    if only != "uring" {
        idle_pairs_hold_no_io_wq_threads(Driver::Legacy, soft);
    }
}

/// Not a test of its own: the child half of `idle_pairs_on_both_drivers`, run by it with
/// `CHILD_ENV` set. Reads a u64 count then 64 bytes (tokens A, B) per pair from stdin, dials
/// both sides of each, checks the last pair relays, prints READY, and holds the sockets
/// until stdin closes.
#[test]
#[ignore = "child process of idle_pairs_on_both_drivers"]
fn idle_child() {
    let Ok(addr) = std::env::var(CHILD_ENV) else {
        eprintln!("idle_child only runs as a child of idle_pairs_on_both_drivers");
        return;
    };
    let addr: SocketAddr = addr.parse().unwrap();
    let mut stdin = std::io::stdin().lock();
    let mut count = [0u8; 8];
    stdin.read_exact(&mut count).unwrap();
    let n = u64::from_le_bytes(count) as usize;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut t = [[0u8; 32]; 2];
        stdin.read_exact(&mut t[0]).unwrap();
        stdin.read_exact(&mut t[1]).unwrap();
        let a = dial(addr, &Token::from_bytes(t[0]));
        let b = dial(addr, &Token::from_bytes(t[1]));
        held.push((a, b));
    }
    if let Some((a, b)) = held.last_mut() {
        ping_pong(a, b);
    }
    println!("{READY} {n}");
    std::io::stdout().flush().unwrap();
    // Hold until the parent closes our stdin (or exits).
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    drop(held);
}

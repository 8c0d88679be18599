//! 10,000 idle pairs must not hold io-wq kernel threads: readiness waits are polls, not
//! parked splice ops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use common::*;
use tandem_engine::{Driver, EngineError, PairKind};

const PAIRS: usize = 10_000;

/// Raises RLIMIT_NOFILE to `want`, or, without CAP_SYS_RESOURCE, to the hard limit.
/// Returns the soft limit in force.
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
    // SAFETY: as above; lowering or keeping within the hard limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cur) }, 0);
    cur.rlim_max
}

fn io_wq_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("iou-wrk"))
        .count()
}

fn idle_pairs_hold_no_io_wq_threads(driver: Driver) {
    // 4 fds per pair (2 client, 2 engine) plus slack for pipes, listeners and rings.
    let limit = raise_nofile(4 * PAIRS as u64 + 2_000);
    let pairs = PAIRS.min((limit as usize).saturating_sub(2_000) / 4);
    if pairs < PAIRS {
        eprintln!(
            "RLIMIT_NOFILE hard limit {limit}: running {pairs} idle pairs instead of {PAIRS}"
        );
    }
    let (h, _rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    let mut held = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let t = loop {
            match h.create_pair(PairKind::Direct) {
                Ok(t) => break t,
                Err(EngineError::MailboxFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let a = dial(addr, &t.side_a);
        let b = dial(addr, &t.side_b);
        held.push((a, b));
    }
    let (a, b) = held.last_mut().unwrap();
    ping_pong(a, b);
    // Each core pairs independently; poll the counter (bounded by STEP) until all are paired.
    let started = std::time::Instant::now();
    let paired = loop {
        let paired: u64 = h.stats().iter().map(|s| s.paired).sum();
        if paired as usize == pairs || started.elapsed() > STEP {
            break paired;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(paired as usize, pairs);
    let threads = io_wq_threads();
    assert!(
        threads <= 2 * h.cores(),
        "{threads} iou-wrk threads for {} cores",
        h.cores()
    );
    drop(held);
    h.shutdown().unwrap();
}

/// Both drivers in one test, one after the other: they share the process's fd limit.
#[test]
fn idle_pairs_on_both_drivers() {
    idle_pairs_hold_no_io_wq_threads(Driver::IoUring);
    idle_pairs_hold_no_io_wq_threads(Driver::Legacy);
}

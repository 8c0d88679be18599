//! Heap bytes a waiting pair and a relaying pair cost the engine, counted by a global
//! allocator (live bytes = allocated − freed), on both drivers.
//!
//! Its own test binary: a `#[global_allocator]` is per binary, and the counts must not include
//! other suites' threads. No RSS is involved (the allocator's arenas and page reuse make RSS a
//! figure for the bench, not a test); the counts are exact for a given build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tandem_engine::{
    CoreStatsSnapshot, Driver, DriverInUse, Engine, EngineConfig, EngineHandle, PairKind,
    RefuseAll, Token,
};

/// Counts live heap bytes and allocations of the whole process.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        // SAFETY: as above; `p` came from `alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Pairs measured per driver: 4 fds each in this process (both client and engine ends), well
/// under the 20,000-fd hard limit of the sandbox.
const PAIRS: usize = 1_000;
/// Bound on waiting for the engine to reach a state (a hang detector, generous for a loaded machine).
const SETTLE: Duration = Duration::from_secs(60);
/// Heap bytes a waiting pair (issued, one side connected and waiting) may cost the engine,
/// with `PAIRS` waiting at once: its table entry (the waiting connection inline, ~330 B), two
/// token index slots, the socket's driver state, the tables' growth. Measured 828 B on
/// io_uring (engine commit of issue 14); it was 776–920 B before.
const MAX_WAITING_BYTES: f64 = 1024.0;
/// Heap bytes a relaying pair may cost, pairs opened one after the other: its task (1,104 B
/// future: both directions' readiness waits, the two streams; no per-pair timer), the two
/// sockets' driver state, the two tokens' tombstones (kept for the pair TTL), its idle clock
/// and the driver's op slots. Measured 1,760 B before parking, 1,792–1,797 B with it (the
/// idle clock's resume instant, 16 B, and the relay future's alarm loop); it was ~4.4 KiB
/// before issue 14 (a 2.7 KiB task future with a 640-byte timer, tombstones of 56-byte
/// B-tree elements). A per-pair timer again (640 B) exceeds it.
const MAX_RELAYING_BYTES: f64 = 1900.0;
/// Heap bytes a parked pair may cost (no task, no future, no driver state for its sockets):
/// its record in the core's parking lot (~120 B, in a slab that doubles as it grows), its two
/// tokens' tombstones (~130 B, kept for the pair TTL) and table growth. Measured 160–480 B
/// over runs (the tables' growth steps land differently with the pairs' timing); a task per
/// pair again (>1 KiB) exceeds it.
const MAX_PARKED_BYTES: f64 = 512.0;
/// Quiet time before a pair parks in the parked measurement.
const PARK_AFTER: Duration = Duration::from_millis(50);

fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

fn raise_nofile() {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid rlimit structs; soft up to hard is always allowed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur), 0);
        cur.rlim_cur = cur.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &cur), 0);
    }
}

fn total(h: &EngineHandle) -> CoreStatsSnapshot {
    h.stats().into_iter().next().unwrap()
}

/// Waits (bounded) until `f` holds of the engine's counters.
fn settle(h: &EngineHandle, what: &str, f: impl Fn(&CoreStatsSnapshot) -> bool) {
    let start = Instant::now();
    while !f(&total(h)) {
        assert!(start.elapsed() < SETTLE, "{what}: {:?}", total(h));
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn dial(addr: SocketAddr, t: &Token) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(SETTLE)).unwrap();
    s.write_all(t.as_bytes()).unwrap();
    s
}

fn ping(a: &mut TcpStream, b: &mut TcpStream) {
    let mut buf = [0u8; 4];
    a.write_all(b"ping").unwrap();
    b.read_exact(&mut buf).unwrap();
    b.write_all(b"pong").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

/// (bytes per waiting pair, bytes per relaying pair, allocations per pair setup).
fn measure(driver: Driver) -> (f64, f64, f64) {
    raise_nofile();
    // No parking: every pair measured here keeps its task.
    let cfg = EngineConfig {
        cores: Some(vec![0]),
        pin: false,
        driver,
        park_after: None,
        ..EngineConfig::default()
    };
    let (h, _events) = Engine::start(cfg, Arc::new(RefuseAll)).unwrap();
    let want = match driver {
        Driver::IoUring => DriverInUse::IoUring,
        _ => DriverInUse::Legacy,
    };
    assert_eq!(h.drivers(), vec![Some(want)]);
    let addr = h.local_addrs().pairing;
    // Warm-up: pools, slabs and tables reach their working size; these pairs close again.
    for _ in 0..64 {
        let t = h.create_pair(PairKind::Direct).unwrap();
        let (mut a, mut b) = (dial(addr, &t.side_a), dial(addr, &t.side_b));
        ping(&mut a, &mut b);
    }
    settle(&h, "warm-up pairs closed", |s| {
        s.live_pairs == 0 && s.open_conns == 0
    });
    let mut tickets = Vec::with_capacity(PAIRS);
    let mut clients: Vec<(TcpStream, Option<TcpStream>)> = Vec::with_capacity(PAIRS);
    let (live0, allocs0) = (live(), ALLOCS.load(Ordering::SeqCst));
    for _ in 0..PAIRS {
        tickets.push(h.create_pair(PairKind::Direct).unwrap());
    }
    for t in &tickets {
        clients.push((dial(addr, &t.side_a), None));
    }
    settle(&h, "first sides waiting", |s| s.waiting == PAIRS as u64);
    let waiting = (live() - live0) as f64 / PAIRS as f64;
    for (t, c) in tickets.iter().zip(clients.iter_mut()) {
        c.1 = Some(dial(addr, &t.side_b));
    }
    settle(&h, "pairs relaying", |s| {
        s.live_pairs == PAIRS as u64 && s.waiting == 0
    });
    for i in [0, PAIRS - 1] {
        let (a, b) = &mut clients[i];
        ping(a, b.as_mut().unwrap());
    }
    let after_peak = (live() - live0) as f64 / PAIRS as f64;
    let allocs = (ALLOCS.load(Ordering::SeqCst) - allocs0) as f64 / PAIRS as f64;
    // Pairs opened one after the other: no waiting peak grows the tables.
    let mut more = Vec::with_capacity(PAIRS);
    let live1 = live();
    for _ in 0..PAIRS {
        let t = h.create_pair(PairKind::Direct).unwrap();
        more.push((dial(addr, &t.side_a), dial(addr, &t.side_b)));
    }
    settle(&h, "sequential pairs relaying", |s| {
        s.live_pairs == 2 * PAIRS as u64 && s.waiting == 0
    });
    let (a, b) = more.last_mut().unwrap();
    ping(a, b);
    let relaying = (live() - live1) as f64 / PAIRS as f64;
    drop((clients, more));
    h.shutdown().unwrap();
    eprintln!(
        "{driver:?}: {waiting:.0} B per waiting pair, {after_peak:.0} B per relaying pair after \
         a waiting peak, {relaying:.0} B per relaying pair, {allocs:.1} allocations per pair set up"
    );
    (waiting, relaying, allocs)
}

/// Bytes per parked pair: `PAIRS` pairs opened one after the other, each parked once quiet.
fn measure_parked(driver: Driver) -> f64 {
    raise_nofile();
    let cfg = EngineConfig {
        cores: Some(vec![0]),
        pin: false,
        driver,
        park_after: Some(PARK_AFTER),
        tick: Duration::from_millis(20),
        ..EngineConfig::default()
    };
    let (h, _events) = Engine::start(cfg, Arc::new(RefuseAll)).unwrap();
    let addr = h.local_addrs().pairing;
    // Warm-up: `PAIRS` pairs at once, then closed, so that pools, the driver's slabs, the
    // idle clocks, the lot and the tables reach their high-water mark before the count starts
    // (a parked pair's own cost is what remains).
    let mut warm = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let t = h.create_pair(PairKind::Direct).unwrap();
        warm.push((dial(addr, &t.side_a), dial(addr, &t.side_b)));
    }
    settle(&h, "warm-up pairs parked", |s| {
        s.parked_pairs == PAIRS as u64
    });
    for (a, b) in &mut warm {
        ping(a, b);
    }
    drop(warm);
    settle(&h, "warm-up pairs closed", |s| {
        s.live_pairs == 0 && s.open_conns == 0
    });
    let mut pairs = Vec::with_capacity(PAIRS);
    let live0 = live();
    for _ in 0..PAIRS {
        let t = h.create_pair(PairKind::Direct).unwrap();
        pairs.push((dial(addr, &t.side_a), dial(addr, &t.side_b)));
    }
    settle(&h, "pairs parked", |s| {
        s.parked_pairs == PAIRS as u64 && s.waiting == 0
    });
    let parked = (live() - live0) as f64 / PAIRS as f64;
    // Still relaying: the last pair wakes, answers and parks again.
    let (a, b) = pairs.last_mut().unwrap();
    ping(a, b);
    settle(&h, "the pair parked again", |s| {
        s.parked_pairs == PAIRS as u64 && s.unparks >= 1
    });
    drop(pairs);
    h.shutdown().unwrap();
    eprintln!("{driver:?}: {parked:.0} B per parked pair");
    parked
}

fn check(driver: Driver) {
    let parked = measure_parked(driver);
    assert!(
        parked <= MAX_PARKED_BYTES,
        "{driver:?}: a parked pair costs {parked:.0} B"
    );
    let (waiting, relaying, _) = measure(driver);
    assert!(
        waiting <= MAX_WAITING_BYTES,
        "{driver:?}: a waiting pair costs {waiting:.0} B"
    );
    assert!(
        relaying <= MAX_RELAYING_BYTES,
        "{driver:?}: a relaying pair costs {relaying:.0} B"
    );
}

#[test]
fn a_pair_costs_bounded_heap_on_io_uring() {
    check(Driver::IoUring);
}

#[test]
fn a_pair_costs_bounded_heap_on_epoll() {
    check(Driver::Legacy);
}

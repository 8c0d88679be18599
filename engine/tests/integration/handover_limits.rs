//! Bandwidth limits survive a binary upgrade, on both drivers: a relaying pair limited by its
//! own rate, a relaying pair limited only by its operator's rate, and an issued pair whose
//! side A waits (limited by its own rate) are handed to a new engine (or taken back by the
//! old one, a failed upgrade); after adoption none beats rate × time + burst. Unlimited,
//! loopback moves hundreds of MiB/s, so a limit lost in the hand-over fails at once.

use crate::abuse_support::eventually;
use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU64;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use tandem_engine::handover::{Bundle, Message, fdpass};
use tandem_engine::{
    BandwidthLimits, ByteRate, CoreId, Driver, Engine, EngineHandle, OperatorBandwidth, PairKind,
    RefuseAll,
};

both_drivers!(
    limited_pairs_keep_their_rates_in_the_new_engine,
    limited_pairs_keep_their_rates_after_a_rollback
);

/// Each pair's rate (and the operator's, per core): 1 MiB/s with a 64 KiB burst.
const RATE: u64 = 1 << 20;
const BURST: u64 = 64 * 1024;
/// How long the pairs are read after adoption.
const AFTER: Duration = Duration::from_secs(2);

fn rate(per_second: u64) -> ByteRate {
    ByteRate {
        per_second: NonZeroU64::new(per_second).unwrap(),
        burst: NonZeroU64::new(BURST).unwrap(),
    }
}

/// Writes zeros to `s` until `stop` (or the peer goes away).
fn flood(mut s: TcpStream, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match s.write(&buf) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    })
}

/// Reads `s` until `stop`, adding what it reads to `total`.
fn drink(mut s: TcpStream, total: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    total.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    })
}

/// A flow through one pair: its sender, its reader and the bytes read so far.
struct Flow {
    total: Arc<AtomicU64>,
    threads: [JoinHandle<()>; 2],
}

fn flow(a: TcpStream, b: TcpStream, stop: &Arc<AtomicBool>) -> Flow {
    let total = Arc::new(AtomicU64::new(0));
    Flow {
        threads: [
            flood(a, stop.clone()),
            drink(b, total.clone(), stop.clone()),
        ],
        total: total.clone(),
    }
}

/// Waits until every flow moved some bytes (the pairs relay, limited).
fn flowing(flows: &[&Flow]) {
    eventually("the limited pairs relay", || {
        flows.iter().all(|f| f.total.load(Ordering::Relaxed) > 0)
    });
}

/// Sends `bundle` over a Unix socket pair and receives it as the new process would.
fn through_a_socket(bundle: &Bundle) -> Bundle {
    let (tx, rx) = UnixStream::pair().unwrap();
    rx.set_read_timeout(Some(STEP)).unwrap();
    std::thread::scope(|s| {
        let sender = s.spawn(|| bundle.send(&tx));
        let (msg, fds) = fdpass::recv(&rx).unwrap();
        sender.join().unwrap().unwrap();
        let Message::Offer(state) = msg else {
            panic!("not an offer: {msg:?}")
        };
        Bundle::from_parts(state, fds)
    })
}

/// The limits each pair is created with: its own rate; only its operator's; its own rate.
fn limits() -> [BandwidthLimits; 3] {
    let own = BandwidthLimits {
        pair: Some(rate(RATE)),
        operator: None,
    };
    // The operator's engine-wide rate; each of the two cores enforces half of it.
    let operator = BandwidthLimits {
        pair: None,
        operator: Some(OperatorBandwidth {
            key: 42,
            rate: rate(2 * RATE),
        }),
    };
    [own, operator, own]
}

/// Two relaying limited pairs and a limited issued pair whose side A waits, all on core 0,
/// then the hand-over (`upgrade`: to a new engine, else back into this one); after adoption
/// each flow is read for [`AFTER`] and bounded.
fn keep_rates(driver: Driver, upgrade: bool) {
    let (old, _old_events) = start(config(driver));
    let addr = old.local_addrs().pairing;
    let [l0, l1, l2] = limits();
    let ticket = |h: &EngineHandle, l| {
        h.create_pair_limited(PairKind::Direct, h.pair_ttl(), Some(CoreId(0)), l)
            .unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (t0, t1, t2) = (ticket(&old, l0), ticket(&old, l1), ticket(&old, l2));
    let f0 = flow(dial(addr, &t0.side_a), dial(addr, &t0.side_b), &stop);
    let f1 = flow(dial(addr, &t1.side_a), dial(addr, &t1.side_b), &stop);
    let waiting_a = dial(addr, &t2.side_a);
    flowing(&[&f0, &f1]);

    let mut bundle = old.export(STEP).unwrap();
    let limits: Vec<_> = bundle.state.live.iter().map(|p| p.limits).collect();
    assert_eq!(limits.len(), 2, "both relaying pairs handed over");
    assert!(limits.contains(&l0) && limits.contains(&l1), "{limits:?}");
    let issued: Vec<_> = bundle.state.issued.iter().map(|p| p.limits).collect();
    assert_eq!(issued, vec![l2], "the issued pair with its limits");
    let (new, _events) = if upgrade {
        let mut received = through_a_socket(&bundle);
        drop(bundle);
        old.shutdown().unwrap();
        let (new, events, adopted) =
            Engine::start_inherited(config(driver), Arc::new(RefuseAll), &mut received).unwrap();
        assert_eq!((adopted.live, adopted.issued, adopted.waiting), (2, 1, 1));
        (new, Some(events))
    } else {
        let adopted = old.adopt(&mut bundle).unwrap();
        assert_eq!((adopted.live, adopted.issued, adopted.waiting), (2, 1, 1));
        (old, None)
    };
    let adopted_at = Instant::now();
    let at_adoption = [&f0, &f1].map(|f| f.total.load(Ordering::Relaxed));
    // The waiting side's partner arrives in the adopting engine: the pair relays, limited.
    let f2 = flow(
        waiting_a,
        dial(new.local_addrs().pairing, &t2.side_b),
        &stop,
    );
    let f2_from = Instant::now();
    std::thread::sleep(AFTER);
    let moved = [
        f0.total.load(Ordering::Relaxed) - at_adoption[0],
        f1.total.load(Ordering::Relaxed) - at_adoption[1],
        f2.total.load(Ordering::Relaxed),
    ];
    let took = [
        adopted_at.elapsed(),
        adopted_at.elapsed(),
        f2_from.elapsed(),
    ];
    stop.store(true, Ordering::Relaxed);
    for f in [f0, f1, f2] {
        for t in f.threads {
            t.join().unwrap();
        }
    }
    for (i, (got, took)) in moved.into_iter().zip(took).enumerate() {
        // The rate over the time measured (a slow machine only makes `took` longer) plus the
        // fresh bucket's burst, plus one burst the old engine may have written before the
        // pause and the reader had not read yet at adoption.
        let most = (took.as_secs_f64() * RATE as f64) as u64 + 2 * BURST;
        assert!(
            got <= most,
            "pair {i} moved {got} bytes in {took:?} after adoption (at most {most})"
        );
        assert!(got > 0, "pair {i} relays after adoption");
    }
    new.shutdown().unwrap();
}

fn limited_pairs_keep_their_rates_in_the_new_engine(driver: Driver) {
    keep_rates(driver, true);
}

fn limited_pairs_keep_their_rates_after_a_rollback(driver: Driver) {
    keep_rates(driver, false);
}

//! Binary upgrade inside one process, on both drivers: an engine pauses and exports its
//! listeners, a relaying pair (mid-transfer both ways), a waiting side and an issued pair; the
//! bundle crosses a Unix socket with its sockets (`SCM_RIGHTS`) to a second engine started on
//! it, or goes back into the first (a failed upgrade). The transfer completes intact, the
//! waiting side pairs, and clients that dialled while the engine was paused are served.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use crate::parking::{parked, parking_config, total};
use common::*;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tandem_engine::handover::{Bundle, Message, fdpass};
use tandem_engine::{
    CloseReason, Driver, Engine, EngineHandle, PairEvent, PairKind, PairTicket, RefuseAll,
};

both_drivers!(
    pairs_and_listeners_move_to_a_new_engine,
    a_failed_upgrade_takes_everything_back,
    a_parked_pair_moves_to_a_new_engine,
    a_parked_pair_comes_back_after_a_failed_upgrade,
);

/// Bytes each way through the relaying pair.
const BYTES: usize = 16 << 20;

/// Writes `BYTES` seeded bytes in 64 KiB writes, then shuts down; returns their sha256.
fn send(mut s: TcpStream, seed: u64) -> [u8; 32] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..BYTES / buf.len() {
        rng.fill_bytes(&mut buf);
        s.write_all(&buf).unwrap();
        h.update(&buf);
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    h.finalize().into()
}

fn receive(mut s: TcpStream) -> ([u8; 32], usize) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0;
    loop {
        match s.read(&mut buf).unwrap() {
            0 => return (h.finalize().into(), n),
            k => {
                h.update(&buf[..k]);
                n += k;
            }
        }
    }
}

type Flow = (JoinHandle<[u8; 32]>, JoinHandle<([u8; 32], usize)>);

/// A relaying pair with a transfer running each way (started before it returns).
fn transfer(h: &EngineHandle) -> Vec<Flow> {
    let t = h.create_pair(PairKind::Direct).unwrap();
    let addr = h.local_addrs().pairing;
    let (mut a, mut b) = (dial(addr, &t.side_a), dial(addr, &t.side_b));
    ping_pong(&mut a, &mut b);
    let mut flows = Vec::new();
    for (i, (from, to)) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)]
        .into_iter()
        .enumerate()
    {
        flows.push((
            std::thread::spawn(move || send(from, i as u64)),
            std::thread::spawn(move || receive(to)),
        ));
    }
    flows
}

fn finish(flows: Vec<Flow>) {
    for (sender, receiver) in flows {
        let sent = sender.join().unwrap();
        let (got, n) = receiver.join().unwrap();
        assert_eq!(n, BYTES, "every byte arrived");
        assert_eq!(sent, got, "sha256 of the stream");
    }
}

/// Waits until the engine holds `n` waiting sides.
fn waiting(h: &EngineHandle, n: u64) {
    let deadline = std::time::Instant::now() + STEP;
    while h.stats().iter().map(|c| c.waiting).sum::<u64>() != n {
        assert!(std::time::Instant::now() < deadline, "waiting sides");
        std::thread::yield_now();
    }
}

/// The old engine's state before the upgrade: a transfer, a waiting side A, an issued pair.
struct Before {
    flows: Vec<Flow>,
    waiting: (PairTicket, TcpStream),
    issued: PairTicket,
}

fn set_up(old: &EngineHandle) -> Before {
    let flows = transfer(old);
    let addr = old.local_addrs().pairing;
    let w = old.create_pair(PairKind::Direct).unwrap();
    let a = dial(addr, &w.side_a);
    waiting(old, 1);
    let issued = old.create_pair(PairKind::Direct).unwrap();
    Before {
        flows,
        waiting: (w, a),
        issued,
    }
}

/// Dials both sides of `issued` while the engine is paused: the backlog keeps them.
fn dial_while_paused(addr: std::net::SocketAddr, issued: &PairTicket) -> (TcpStream, TcpStream) {
    (dial(addr, &issued.side_a), dial(addr, &issued.side_b))
}

fn check_after(h: &EngineHandle, before: Before, paused: (TcpStream, TcpStream)) {
    let addr = h.local_addrs().pairing;
    let (w, mut a) = before.waiting;
    let mut b = dial(addr, &w.side_b);
    ping_pong(&mut a, &mut b);
    let (mut x, mut y) = paused;
    ping_pong(&mut x, &mut y);
    finish(before.flows);
    // The engine issues pairs again.
    let t = h.create_pair(PairKind::Direct).unwrap();
    let (mut p, mut q) = (dial(addr, &t.side_a), dial(addr, &t.side_b));
    ping_pong(&mut p, &mut q);
}

/// Sends `bundle` over a Unix socket pair and receives it as the new process would.
pub(crate) fn through_a_socket(bundle: &Bundle) -> Bundle {
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

fn pairs_and_listeners_move_to_a_new_engine(driver: Driver) {
    let (old, _old_events) = start(config(driver));
    let before = set_up(&old);
    let bundle = old.export(STEP).unwrap();
    assert_eq!(bundle.state.live.len(), 1, "the relaying pair");
    assert_eq!(
        bundle.state.issued.len(),
        2,
        "the waiting pair and the issued one"
    );
    assert!(
        old.create_pair(PairKind::Direct).is_err(),
        "no pair while handed over"
    );
    let paused = dial_while_paused(old.local_addrs().pairing, &before.issued);

    let mut received = through_a_socket(&bundle);
    // The old process lets go of its copies (as it exits) and stops: nothing it held is reset.
    drop(bundle);
    old.shutdown().unwrap();
    let (new, _events, adopted) =
        Engine::start_inherited(config(driver), Arc::new(RefuseAll), &mut received).unwrap();
    assert_eq!(
        (
            adopted.listeners,
            adopted.issued,
            adopted.waiting,
            adopted.live
        ),
        (2, 2, 1, 1)
    );
    assert_eq!(new.local_addrs().pairing, old.local_addrs().pairing);
    check_after(&new, before, paused);
    let resets: u64 = new.stats().iter().map(|c| c.closed_reset).sum();
    assert_eq!(resets, 0);
}

fn a_failed_upgrade_takes_everything_back(driver: Driver) {
    let (h, _events) = start(config(driver));
    let before = set_up(&h);
    let mut bundle = h.export(STEP).unwrap();
    let paused = dial_while_paused(h.local_addrs().pairing, &before.issued);
    let adopted = h.adopt(&mut bundle).unwrap();
    assert_eq!((adopted.issued, adopted.waiting, adopted.live), (2, 1, 1));
    drop(bundle);
    check_after(&h, before, paused);
}

/// A pair parked in `h` (one ping-pong done, then quiet).
fn parked_pair(h: &EngineHandle) -> (PairTicket, TcpStream, TcpStream) {
    let t = h.create_pair(PairKind::Direct).unwrap();
    let addr = h.local_addrs().pairing;
    let (mut a, mut b) = (dial(addr, &t.side_a), dial(addr, &t.side_b));
    ping_pong(&mut a, &mut b);
    parked(h, 1, 1);
    (t, a, b)
}

/// The pair relays on where it stopped: the close event counts its bytes from the start.
fn relays_on(
    h: &EngineHandle,
    events: &Receiver<PairEvent>,
    p: (PairTicket, TcpStream, TcpStream),
) {
    let (t, mut a, mut b) = p;
    ping_pong(&mut a, &mut b);
    parked(h, 1, 1);
    ping_pong(&mut b, &mut a);
    a.shutdown(std::net::Shutdown::Write).unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    let ev = wait_event(
        events,
        |e| matches!(e, PairEvent::Closed { id, .. } if *id == t.id),
    );
    assert!(
        matches!(
            ev,
            PairEvent::Closed {
                reason: CloseReason::Normal,
                bytes_a_to_b: 12,
                bytes_b_to_a: 12,
                ..
            }
        ),
        "{ev:?}"
    );
}

fn a_parked_pair_moves_to_a_new_engine(driver: Driver) {
    let (old, _old_events) = start(parking_config(driver));
    let p = parked_pair(&old);
    let bundle = old.export(STEP).unwrap();
    assert_eq!(bundle.state.live.len(), 1, "the parked pair");
    assert_eq!(total(&old, |s| s.parked_pairs), 0);
    let mut received = through_a_socket(&bundle);
    drop(bundle);
    old.shutdown().unwrap();
    let (new, events, adopted) =
        Engine::start_inherited(parking_config(driver), Arc::new(RefuseAll), &mut received)
            .unwrap();
    assert_eq!(adopted.live, 1);
    relays_on(&new, &events, p);
    new.shutdown().unwrap();
}

fn a_parked_pair_comes_back_after_a_failed_upgrade(driver: Driver) {
    let (h, events) = start(parking_config(driver));
    let p = parked_pair(&h);
    let mut bundle = h.export(STEP).unwrap();
    assert_eq!(bundle.state.live.len(), 1, "the parked pair");
    let adopted = h.adopt(&mut bundle).unwrap();
    assert_eq!(adopted.live, 1);
    drop(bundle);
    relays_on(&h, &events, p);
    h.shutdown().unwrap();
}

//! The parking lot over real loopback sockets: what wakes a parked pair, what does not, and
//! that a pair leaving the lot is no longer watched.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::*;

/// A connected pair of loopback sockets: (the engine's end, the peer's end).
fn conn() -> (OwnedFd, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    (ours.into(), peer)
}

/// A parked pair named `n` and the two peers.
fn pair(n: u32, eof: [bool; 2], last: Instant) -> (Parked<u32>, [TcpStream; 2]) {
    let ((a, pa), (b, pb)) = (conn(), conn());
    let p = Parked {
        fds: [a, b],
        eof,
        last,
        pair: n,
    };
    (p, [pa, pb])
}

/// Bounded wait until the lot reports something (a loopback byte arrives at once; the bound
/// is only a hang detector).
fn wake_some(lot: &ParkingLot<u32>) -> Vec<Woken<u32>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = lot.wake();
        if !w.is_empty() || Instant::now() > deadline {
            return w;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_byte_from_either_side_wakes_its_pair_only() {
    let lot = ParkingLot::new().unwrap();
    let now = Instant::now();
    let (p1, mut peers1) = pair(1, [false; 2], now);
    let (p2, _peers2) = pair(2, [false; 2], now);
    lot.park(p1).unwrap();
    lot.park(p2).unwrap();
    assert!(lot.wake().is_empty(), "nothing ready");
    assert_eq!(lot.len(), 2);
    peers1[1].write_all(b"x").unwrap();
    let w = wake_some(&lot);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].parked.pair, 1);
    assert!(!w[0].reset);
    assert_eq!(lot.len(), 1);
    // Gone from the epoll set: the unread byte no longer reports.
    assert!(lot.wake().is_empty());
    drop(w);
    let _ = &mut peers1;
}

#[test]
fn both_sides_speaking_wake_the_pair_once() {
    let lot = ParkingLot::new().unwrap();
    let (p, mut peers) = pair(7, [false; 2], Instant::now());
    lot.park(p).unwrap();
    peers[0].write_all(b"a").unwrap();
    peers[1].write_all(b"b").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let w = wake_some(&lot);
    assert_eq!(w.len(), 1, "the second event is stale");
    assert_eq!(lot.len(), 0);
}

#[test]
fn a_close_wakes_and_a_reset_of_a_finished_side_is_reported() {
    let lot = ParkingLot::new().unwrap();
    // a→b reached EOF: a is watched for errors only; a FIN on b is an ordinary wake.
    let (p, [pa, pb]) = pair(3, [true, false], Instant::now());
    lot.park(p).unwrap();
    pb.shutdown(std::net::Shutdown::Write).unwrap();
    let w = wake_some(&lot);
    assert_eq!(w.len(), 1);
    assert!(!w[0].reset, "a FIN on a live direction is relayed");
    lot.park(w.into_iter().next().unwrap().parked).unwrap();
    // b's peer FIN is still readable: the re-parked pair wakes at once, as a relay would read
    // the EOF. Take it out, then reset a's peer.
    assert_eq!(wake_some(&lot).len(), 1);
    let (p, [pa2, _pb2]) = pair(4, [true, false], Instant::now());
    lot.park(p).unwrap();
    socket2::SockRef::from(&pa2)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(pa2);
    let w = wake_some(&lot);
    assert_eq!(w.len(), 1);
    assert!(w[0].reset, "the finished side was reset");
    drop(pa);
}

#[test]
fn expiry_and_take_all_empty_the_lot_and_unwatch() {
    let lot = ParkingLot::new().unwrap();
    let t0 = Instant::now();
    let (old, mut old_peers) = pair(1, [false; 2], t0);
    let (new, _new_peers) = pair(2, [false; 2], t0 + Duration::from_secs(5));
    lot.park(old).unwrap();
    lot.park(new).unwrap();
    let idle = Duration::from_secs(10);
    assert!(lot.expire(t0 + Duration::from_secs(9), idle).is_empty());
    let gone = lot.expire(t0 + Duration::from_secs(10), idle);
    assert_eq!(gone.iter().map(|p| p.pair).collect::<Vec<_>>(), [1]);
    old_peers[0].write_all(b"x").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(lot.wake().is_empty(), "an expired pair is not watched");
    let all = lot.take_all();
    assert_eq!(all.len(), 1);
    assert_eq!(lot.len(), 0);
}

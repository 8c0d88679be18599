#![allow(clippy::unwrap_used)]
use super::*;
use crate::handover::state::{FdIndex, HandoverState, ListenerEntry, ListenerRole};
use std::os::fd::AsFd;
use std::time::Duration;

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    (a, b)
}

#[test]
fn an_offer_carries_its_listening_sockets_across_batches() {
    let n = FDS_PER_MSG + 7;
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let state = HandoverState {
        cores: 1,
        fds: n as u32,
        listeners: (0..n)
            .map(|i| ListenerEntry {
                role: ListenerRole::JsonRpc,
                fd: FdIndex(i as u32),
            })
            .collect(),
        ..Default::default()
    };
    let (a, b) = pair();
    let fds: Vec<_> = listeners.iter().map(|l| l.as_fd()).collect();
    let sender = std::thread::scope(|s| {
        let h = s.spawn(|| send(&a, &Message::Offer(state.clone()), &fds));
        let got = recv(&b).unwrap();
        h.join().unwrap().unwrap();
        got
    });
    let (msg, got) = sender;
    assert_eq!(msg, Message::Offer(state));
    assert_eq!(got.len(), n);
    // Each received fd is the same listening socket: a connection to listener i is accepted on it.
    for (i, fd) in got.into_iter().enumerate().step_by(50) {
        let l = std::net::TcpListener::from(fd);
        assert_eq!(l.local_addr().unwrap(), listeners[i].local_addr().unwrap());
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        l.accept().unwrap();
    }
}

#[test]
fn garbage_on_the_socket_is_a_clear_error() {
    let (a, b) = pair();
    (&a).write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(matches!(
        recv(&b),
        Err(HandoverError::Wire(wire::WireError::BadMagic))
    ));
}

#[test]
fn a_peer_that_closes_mid_frame_is_an_error_not_a_hang() {
    let (a, b) = pair();
    let frame = wire::encode(&Message::Ready { pid: 3 }).unwrap();
    (&a).write_all(&frame[..frame.len() - 1]).unwrap();
    drop(a);
    assert!(recv(&b).is_err());
}

#[test]
fn an_offer_whose_sockets_never_come_times_out() {
    let (a, b) = pair();
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let state = HandoverState {
        cores: 1,
        fds: 1,
        listeners: vec![ListenerEntry {
            role: ListenerRole::Metrics,
            fd: FdIndex(0),
        }],
        ..Default::default()
    };
    (&a).write_all(&wire::encode(&Message::Offer(state)).unwrap())
        .unwrap();
    assert!(matches!(recv(&b), Err(HandoverError::Io { .. })));
}

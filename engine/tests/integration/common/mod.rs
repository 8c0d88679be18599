//! Helpers for engine integration tests: start an engine on 127.0.0.1:0 with short deadlines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use tandem_engine::{
    Driver, Engine, EngineConfig, EngineHandle, PairEvent, RefuseAll, SniResolver, Token,
};

/// Upper bound for any single blocking step in a test (a hang fails instead of stalling CI).
pub const STEP: Duration = Duration::from_secs(20);

pub fn config(driver: Driver) -> EngineConfig {
    EngineConfig {
        cores: Some(vec![0, 1]),
        pin: false,
        driver,
        token_deadline: Duration::from_secs(5),
        ..EngineConfig::default()
    }
}

pub fn start(cfg: EngineConfig) -> (EngineHandle, Receiver<PairEvent>) {
    start_with(cfg, Arc::new(RefuseAll))
}

pub fn start_with(
    cfg: EngineConfig,
    resolver: Arc<dyn SniResolver>,
) -> (EngineHandle, Receiver<PairEvent>) {
    let want = cfg.driver;
    let (h, rx) = Engine::start(cfg, resolver).expect("engine starts");
    if want != Driver::Auto {
        let expect = match want {
            Driver::IoUring => tandem_engine::DriverInUse::IoUring,
            _ => tandem_engine::DriverInUse::Legacy,
        };
        assert!(
            h.drivers().iter().all(|d| *d == Some(expect)),
            "{:?}",
            h.drivers()
        );
    }
    (h, rx)
}

pub fn dial(addr: SocketAddr, token: &Token) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.write_all(token.as_bytes()).expect("write token");
    s
}

/// Reads until EOF or error; returns the bytes and whether it ended in an error.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e.kind())),
        }
    }
}

/// Sends one message each way and checks it arrives.
pub fn ping_pong(a: &mut TcpStream, b: &mut TcpStream) {
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

/// Waits for the next event matching `f`, skipping others.
pub fn wait_event(rx: &Receiver<PairEvent>, f: impl Fn(&PairEvent) -> bool) -> PairEvent {
    loop {
        let ev = rx.recv_timeout(STEP).expect("event in time");
        if f(&ev) {
            return ev;
        }
    }
}

/// The peer closed the socket: a read gives EOF or a reset.
pub fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected close, got {other:?}"),
    }
}

/// Generates `name_io_uring` and `name_epoll` tests calling `body(driver)`.
macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $(#[test] fn $name() { super::$name(tandem_engine::Driver::IoUring) })*
        }
        mod epoll {
            $(#[test] fn $name() { super::$name(tandem_engine::Driver::Legacy) })*
        }
    };
}

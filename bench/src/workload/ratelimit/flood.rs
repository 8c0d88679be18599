//! One row of the rate-limit run: an engine, one pair, a flood A → B, the rate measured at B.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tandem_engine::{BandwidthLimits, Driver, Engine, EngineConfig, PairKind, RefuseAll, Token};

/// Bytes per write of the flooding thread and per read of the measuring one.
const CHUNK: usize = 1 << 20;
/// Bound on a blocked read or write: a stalled row fails instead of hanging the run.
const STALL: Duration = Duration::from_secs(10);

fn dial(addr: std::net::SocketAddr, token: &Token) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).context("connecting to the pairing port")?;
    s.set_nodelay(true)?;
    s.write_all(token.as_bytes())?;
    Ok(s)
}

/// Floods a pair with `limits` on a one-worker engine of `driver` and returns the rate B
/// received, bytes per second, arrival to arrival over `window` after `warmup`.
pub fn measure(
    driver: Driver,
    limits: BandwidthLimits,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<f64> {
    let cfg = EngineConfig {
        cores: Some(vec![0]),
        pin: false,
        driver,
        idle_timeout: None,
        ..EngineConfig::default()
    };
    let (engine, _events) =
        Engine::start(cfg, Arc::new(RefuseAll)).context("starting the engine")?;
    let result = flood(&engine, limits, warmup, window);
    engine.shutdown().context("stopping the engine")?;
    result
}

fn flood(
    engine: &tandem_engine::EngineHandle,
    limits: BandwidthLimits,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<f64> {
    let ticket = engine.create_pair_limited(PairKind::Direct, engine.pair_ttl(), None, limits)?;
    let addr = engine.local_addrs().pairing;
    let mut a = dial(addr, &ticket.side_a)?;
    let mut b = dial(addr, &ticket.side_b)?;
    a.set_write_timeout(Some(Duration::from_millis(100)))?;
    b.set_read_timeout(Some(STALL))?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer_stop = stop.clone();
    let writer = std::thread::spawn(move || {
        let buf = vec![0u8; CHUNK];
        while !writer_stop.load(Ordering::Relaxed) {
            match a.write(&buf) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut total = 0u64;
    let mut first: Option<(Instant, u64)> = None;
    let mut last: Option<(Instant, u64)> = None;
    let outcome = loop {
        let n = match b.read(&mut buf) {
            Ok(0) => break Err(anyhow::anyhow!("the pair closed")),
            Ok(n) => n as u64,
            Err(e) => break Err(anyhow::Error::new(e).context("reading side B")),
        };
        let now = Instant::now();
        total += n;
        let since = now.duration_since(start);
        if since < warmup {
            continue;
        }
        if since > warmup + window {
            break Ok(());
        }
        if first.is_none() {
            first = Some((now, total));
        } else {
            last = Some((now, total));
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(b);
    let _ = writer.join();
    outcome?;
    let (Some((t0, b0)), Some((t1, b1))) = (first, last) else {
        bail!("fewer than two reads in the measured window");
    };
    Ok((b1 - b0) as f64 / t1.duration_since(t0).as_secs_f64())
}

//! `latency`: ping-pong on one established pair at a fixed offered rate. Each message's
//! latency is measured from the time it was *scheduled* to be sent, so a stall that delays
//! later sends is charged to them too (coordinated omission corrected); the uncorrected
//! figures (from the actual send) are reported beside.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stats::{Latencies, LatencySummary};
use crate::target::Target;

/// Messages sent before recording starts (connection and cache warm-up).
const WARMUP: usize = 100;
/// Below this much time to the next send we spin instead of sleeping (sleep overshoots by
/// tens of microseconds, which would itself show up as latency).
const SPIN_BELOW: Duration = Duration::from_micros(200);

/// Settings of one latency run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencySettings {
    /// Offered messages per second.
    pub rate: u32,
    /// Messages recorded.
    pub messages: usize,
    /// Message size in bytes.
    pub size: usize,
}

/// Figures of one latency run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyResult {
    /// Messages per second asked for.
    pub rate_offered: f64,
    /// Messages per second achieved.
    pub rate_achieved: f64,
    /// Message size in bytes.
    pub size: usize,
    /// Round trips, measured from the scheduled send time.
    pub corrected: LatencySummary,
    /// Round trips, measured from the actual send time.
    pub uncorrected: LatencySummary,
}

fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > SPIN_BELOW {
            std::thread::sleep(left - SPIN_BELOW);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Runs the workload against `target`.
pub fn run(target: &dyn Target, s: &LatencySettings) -> anyhow::Result<LatencyResult> {
    let (mut a, b) = target.open_pair()?;
    let size = s.size.max(1);
    let echo = std::thread::Builder::new()
        .name("bench-latency-echo".into())
        .spawn(move || {
            let mut b = b;
            let mut buf = vec![0u8; size];
            // Ends when the client closes its side (read_exact fails on EOF).
            while b.read_exact(&mut buf).is_ok() {
                if b.write_all(&buf).is_err() {
                    break;
                }
            }
        })?;
    let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut back = vec![0u8; size];
    let interval = Duration::from_secs_f64(1.0 / f64::from(s.rate.max(1)));
    let (mut corrected, mut uncorrected) = (Latencies::new(), Latencies::new());
    let total = WARMUP + s.messages;
    let start = Instant::now();
    let mut measured_from = start;
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        if i == WARMUP {
            measured_from = scheduled;
        }
        wait_until(scheduled);
        let sent = Instant::now();
        a.write_all(&msg).context("send")?;
        a.read_exact(&mut back).context("receive")?;
        let done = Instant::now();
        anyhow::ensure!(back == msg, "echo corrupted at message {i}");
        if i >= WARMUP {
            corrected.record(done - scheduled);
            uncorrected.record(done - sent);
        }
    }
    let wall = measured_from.elapsed();
    drop(a);
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))?;
    Ok(LatencyResult {
        rate_offered: f64::from(s.rate),
        rate_achieved: s.messages as f64 / wall.as_secs_f64().max(1e-9),
        size,
        corrected: corrected.summary(),
        uncorrected: uncorrected.summary(),
    })
}

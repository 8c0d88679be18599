//! One direction of a relay: readiness-gated, non-blocking splice with a copy fallback.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Instant;

use monoio::net::TcpStream;

use super::pipe_pool::{NoPipe, Pipe};
use super::splice::{self, Step};
use super::{Direction, Fatal, RelayEnv};
use crate::stats::CoreStats;

/// Transfers per readiness before yielding to the other tasks of the core (fairness bound).
/// A burst also ends at a short read (fewer bytes than asked: the socket is empty), without
/// the syscall that would only return EAGAIN: the readiness wait that follows is
/// level-triggered, so bytes that arrive meanwhile complete it at once. One syscall less per
/// message on request/response traffic.
const ROUNDS_PER_WAKEUP: usize = 16;

enum Burst {
    /// The source would block; wait for readiness again.
    Again,
    /// The source reached EOF.
    Eof,
}

/// Waits until `s` is readable (or writable). No timer here: the pair's idle timeout is one
/// watcher in `relay`, so an idle direction holds only this readiness wait.
pub(crate) async fn wait_ready(s: &TcpStream, read: bool) -> Result<(), Fatal> {
    let r = if read {
        s.readable(false).await
    } else {
        s.writable(false).await
    };
    r.map_err(|_| Fatal::Reset)
}

fn moved(n: usize, dir: &Direction<'_>) {
    if let Some(t) = dir.throttle {
        t.spend(n);
    }
    dir.moved.set(dir.moved.get() + n as u64);
    dir.counter.fetch_add(n as u64, Ordering::Relaxed);
    if let Some(c) = dir.clock {
        c.touch(Instant::now());
    }
}

/// Pumps `src` → `dst` until EOF (then shuts down `dst`'s write half and sets `dir.eof`) or a
/// fatal error. `dir.busy` is false only while it waits for `src` or, limited, parks for credit
/// (its pipe empty, nothing read): where a hand-over may stop it.
pub(crate) async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    env: &RelayEnv<'_>,
    dir: &Direction<'_>,
) -> Result<(), Fatal> {
    if dir.eof.get() {
        dir.busy.set(false);
        return Ok(());
    }
    loop {
        dir.busy.set(false);
        wait_ready(src, true).await?;
        dir.busy.set(true);
        // Boxed: the burst's state (the writability wait; a limited direction's timer) exists
        // only while bytes move, so an idle pump holds just the readiness wait above. An
        // unlimited direction's box has no room for the timer.
        let burst = match dir.throttle {
            None => Box::pin(burst(src, dst, env, dir)).await?,
            Some(t) => {
                Box::pin(async {
                    // Parks before reading or leasing a pipe, so a parked direction holds no
                    // byte and no pipe: a quiet point where a hand-over may stop it. (A flooded
                    // source stays readable, so on the epoll driver the readiness wait above
                    // never parks and the direction would otherwise never look quiet.)
                    dir.busy.set(false);
                    t.until_open().await;
                    dir.busy.set(true);
                    burst(src, dst, env, dir).await
                })
                .await?
            }
        };
        if let Burst::Eof = burst {
            splice::shutdown_write(dst.as_raw_fd());
            dir.eof.set(true);
            dir.busy.set(false);
            return Ok(());
        }
    }
}

/// One readiness's worth of transfers: splices through a leased pipe, or copies when no pipe is
/// to be had (a limited direction's rounds ask at most its grant).
async fn burst(
    src: &TcpStream,
    dst: &TcpStream,
    env: &RelayEnv<'_>,
    dir: &Direction<'_>,
) -> Result<Burst, Fatal> {
    match env.pipes.lease() {
        Ok(pipe) => {
            CoreStats::inc(&env.stats.pipe_leases);
            CoreStats::inc(&env.stats.pipes_in_use);
            let r = splice_burst(src, dst, &pipe, dir).await;
            CoreStats::dec(&env.stats.pipes_in_use);
            match r {
                Ok(_) => env.pipes.give_back(pipe),
                Err(_) => env.pipes.discard(pipe),
            }
            r
        }
        Err(why) => {
            CoreStats::inc(&env.stats.copy_fallbacks);
            if why == NoPipe::Undersized {
                CoreStats::inc(&env.stats.pipes_undersized);
            }
            let mut buf = env.bufs.lease();
            let r = copy_burst(src, dst, &mut buf, dir).await;
            env.bufs.give_back(buf);
            r
        }
    }
}

/// What one round may move: `asked`, or a limited direction's grant (0: its credit is spent).
fn allowance(asked: usize, dir: &Direction<'_>) -> usize {
    match dir.throttle {
        None => asked,
        Some(t) => t.grant(asked, Instant::now()),
    }
}

async fn splice_burst(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    dir: &Direction<'_>,
) -> Result<Burst, Fatal> {
    for _ in 0..ROUNDS_PER_WAKEUP {
        let asked = allowance(pipe.capacity(), dir);
        if asked == 0 {
            return Ok(Burst::Again);
        }
        match splice::splice(src.as_raw_fd(), pipe.write_fd(), asked) {
            Ok(Step::Moved(n)) => {
                drain_pipe(pipe.read_fd(), dst, n).await?;
                moved(n, dir);
                if n < asked {
                    return Ok(Burst::Again);
                }
            }
            Ok(Step::WouldBlock) => return Ok(Burst::Again),
            Ok(Step::Eof) => return Ok(Burst::Eof),
            Err(_) => return Err(Fatal::Reset),
        }
    }
    Ok(Burst::Again)
}

/// Moves exactly `n` bytes out of the pipe into `dst`, waiting for writability on EAGAIN.
async fn drain_pipe(pipe_read: RawFd, dst: &TcpStream, mut n: usize) -> Result<(), Fatal> {
    while n > 0 {
        match splice::splice(pipe_read, dst.as_raw_fd(), n) {
            Ok(Step::Moved(k)) => n -= k.min(n),
            Ok(Step::WouldBlock) => wait_ready(dst, false).await?,
            Ok(Step::Eof) | Err(_) => return Err(Fatal::Reset),
        }
    }
    Ok(())
}

async fn copy_burst(
    src: &TcpStream,
    dst: &TcpStream,
    buf: &mut [u8],
    dir: &Direction<'_>,
) -> Result<Burst, Fatal> {
    for _ in 0..ROUNDS_PER_WAKEUP {
        let asked = allowance(buf.len(), dir);
        if asked == 0 {
            return Ok(Burst::Again);
        }
        match splice::recv(src.as_raw_fd(), &mut buf[..asked]) {
            Ok(Step::Moved(n)) => {
                send_all(dst, &buf[..n]).await?;
                moved(n, dir);
                if n < asked {
                    return Ok(Burst::Again);
                }
            }
            Ok(Step::WouldBlock) => return Ok(Burst::Again),
            Ok(Step::Eof) => return Ok(Burst::Eof),
            Err(_) => return Err(Fatal::Reset),
        }
    }
    Ok(Burst::Again)
}

async fn send_all(dst: &TcpStream, mut bytes: &[u8]) -> Result<(), Fatal> {
    while !bytes.is_empty() {
        match splice::send(dst.as_raw_fd(), bytes) {
            Ok(Step::Moved(k)) => bytes = &bytes[k.min(bytes.len())..],
            Ok(_) => wait_ready(dst, false).await?,
            Err(_) => return Err(Fatal::Reset),
        }
    }
    Ok(())
}

/// Writes a buffered prefix (a ClientHello) to `dst` before relaying; counts it as moved.
pub(crate) async fn write_all(
    dst: &TcpStream,
    bytes: &[u8],
    dir: &Direction<'_>,
) -> Result<(), Fatal> {
    send_all(dst, bytes).await?;
    if !bytes.is_empty() {
        moved(bytes.len(), dir);
    }
    Ok(())
}

//! The relay of one pair: two directions pumped concurrently on the owning core.
//!
//! Each direction waits for readiness (io_uring PollAdd or epoll), then moves bytes with a
//! non-blocking `splice(2)` socket → leased pipe → socket on the core thread; on EAGAIN at the
//! destination it waits for writability with the bytes left in the pipe. No io_uring splice op
//! is ever parked on an idle socket, so idle pairs hold no kernel worker thread.

pub(crate) mod bandwidth;
pub(crate) mod idle;
pub(crate) mod lot;
pub mod pipe_pool;
pub mod splice;
pub mod throttle;

pub(crate) mod pump;

use std::cell::Cell;
use std::future::poll_fn;
use std::os::fd::AsRawFd;
use std::pin::{Pin, pin};
use std::sync::atomic::AtomicU64;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::signal::LocalSignal;
use crate::stats::CoreStats;
use idle::{Alarm, IdleClock, IdleClocks};
use pipe_pool::{BufPool, PipePool};
use throttle::Throttle;

/// Why a pair closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both directions reached EOF and were shut down in order.
    Normal,
    /// A side reset or an I/O error occurred; the other side was reset.
    Reset,
    /// No byte moved in either direction for the idle timeout.
    Idle,
    /// Closed by drain or shutdown.
    Drain,
    /// The pair's TTL passed before both sides arrived (never relayed).
    Expired,
    /// The control plane cancelled the pair before it completed.
    Cancelled,
}

impl CloseReason {
    /// Stable label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::Reset => "reset",
            CloseReason::Idle => "idle",
            CloseReason::Drain => "drain",
            CloseReason::Expired => "expired",
            CloseReason::Cancelled => "cancelled",
        }
    }
}

/// A direction ended the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fatal {
    Reset,
    /// Not from a direction: the idle timeout or drain (see `relay`).
    Closed(CloseReason),
}

fn return_reason(reason: CloseReason) -> Option<Result<(), Fatal>> {
    Some(Err(Fatal::Closed(reason)))
}

/// After a pause: polls the relay until neither direction is mid-burst (`None`: stop there)
/// or it ends (`Some`).
async fn settle<F: Future<Output = Result<(), Fatal>>>(
    mut run: Pin<&mut F>,
    quiet: impl Fn() -> bool,
) -> Option<Result<(), Fatal>> {
    poll_fn(|cx| {
        if quiet() {
            return Poll::Ready(None);
        }
        match run.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending if quiet() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Where a pair's relay starts: from zero, or where a binary upgrade stopped it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Resume {
    /// Bytes already moved `[a→b, b→a]`.
    pub bytes: [u64; 2],
    /// Directions that already reached EOF (their destination's write half is shut down).
    pub eof: [bool; 2],
    /// When a byte last moved (a pair leaving the parking lot keeps its idle time; `None`:
    /// now).
    pub last: Option<Instant>,
}

/// How a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The pair closed (the caller closes the sockets).
    Closed(CloseReason),
    /// A hand-over paused it with its pipes empty; the sockets are handed on, not closed.
    Paused {
        /// Directions that reached EOF.
        eof: [bool; 2],
    },
    /// Quiet for `park_after` with its pipes empty: the sockets go to the core's parking lot.
    Parked {
        /// Directions that reached EOF.
        eof: [bool; 2],
        /// When a byte last moved.
        last: Instant,
    },
}

/// What the relay borrows from its core.
pub(crate) struct RelayEnv<'a> {
    pub pipes: &'a PipePool,
    pub bufs: &'a BufPool,
    pub stats: &'a CoreStats,
    /// The pair's idle timeout (`None`: never cut for idling).
    pub idle: Option<Duration>,
    /// Whether the core parks quiet pairs (its clocks then call `Alarm::Park`).
    pub park: bool,
    /// The core's idle clocks, swept by its tick.
    pub clocks: &'a IdleClocks,
    /// Fired by a hand-over: the relay stops once neither direction is mid-burst.
    pub pause: &'a LocalSignal,
    /// Where an adopted pair starts (boxed: rare, and every pair's future carries the room).
    pub start: Option<Box<Resume>>,
    /// A limited pair's throttles `[a→b, b→a]` (`None`: unlimited).
    pub throttles: Option<&'a [Throttle; 2]>,
}

/// One direction's bookkeeping.
pub(crate) struct Direction<'a> {
    pub moved: &'a Cell<u64>,
    pub counter: &'a AtomicU64,
    /// The pair's idle clock (none without an idle timeout).
    pub clock: Option<&'a IdleClock<'a>>,
    /// Set once the direction reached EOF (a paused pair carries it to the next process).
    pub eof: &'a Cell<bool>,
    /// True while the direction moves bytes (a pipe may hold some); false while it waits.
    pub busy: &'a Cell<bool>,
    /// The direction's bandwidth limit (none when unlimited).
    pub throttle: Option<&'a Throttle>,
}

/// Relays `a` ⇄ `b` until both directions end, one fails, the idle timeout, or `close` fires.
/// `a_prefix` goes to `b` and `b_prefix` to `a` first (a buffered ClientHello).
/// A hand-over's `env.pause` ends it as `Paused` once neither direction is mid-burst (every
/// byte read is written); the clock's `Park` alarm ends it as `Parked` if neither direction is
/// mid-burst then (else it relays on and is called again `park_after` later). Returns how it ended and bytes moved `[a→b, b→a]` (counted from
/// `env.start`). The caller closes or hands on the sockets (it owns them: borrowed here so
/// that the pair's future stores each stream once).
pub(crate) async fn relay(
    a: &TcpStream,
    b: &TcpStream,
    prefixes: [&[u8]; 2],
    env: &RelayEnv<'_>,
    close: &LocalSignal,
) -> (Ended, [u64; 2]) {
    // In a block: `start` is not kept across the awaits below.
    let (ab, ba, eof_ab, eof_ba, clock) = {
        let start = env.start.as_deref().copied().unwrap_or_default();
        let clock = (env.idle.is_some() || env.park).then(|| {
            let now = Instant::now();
            env.clocks.resume(start.last.unwrap_or(now), now)
        });
        let [ab, ba] = start.bytes.map(Cell::new);
        let [eof_ab, eof_ba] = start.eof.map(Cell::new);
        (ab, ba, eof_ab, eof_ba, clock)
    };
    // Busy until each pump first waits (the prefixes are written before).
    let (busy_ab, busy_ba) = (Cell::new(true), Cell::new(true));
    let dir_ab = Direction {
        moved: &ab,
        counter: &env.stats.bytes_a_to_b,
        clock: clock.as_ref(),
        eof: &eof_ab,
        busy: &busy_ab,
        throttle: env.throttles.map(|t| &t[0]),
    };
    let dir_ba = Direction {
        moved: &ba,
        counter: &env.stats.bytes_b_to_a,
        clock: clock.as_ref(),
        eof: &eof_ba,
        busy: &busy_ba,
        throttle: env.throttles.map(|t| &t[1]),
    };
    let run = async {
        // Boxed, and only with a prefix: a buffered ClientHello is rare and short-lived, so
        // its writability wait need not enlarge every pair's future.
        if !prefixes[0].is_empty() {
            Box::pin(pump::write_all(b, prefixes[0], &dir_ab)).await?;
        }
        if !prefixes[1].is_empty() {
            Box::pin(pump::write_all(a, prefixes[1], &dir_ba)).await?;
        }
        // Pinned here and borrowed: moving them into the joining future as arguments would
        // store each pump twice in this future (arguments and the locals they move into).
        let ab = pin!(pump::pump(a, b, env, &dir_ab));
        let ba = pin!(pump::pump(b, a, env, &dir_ba));
        both_or_first_error(ab, ba).await
    };
    let mut run = pin!(run);
    let stop = loop {
        let alarm = monoio::select! {
            r = &mut run => break Some(r),
            a = alarm(clock.as_ref()) => a,
            _ = close.wait() => break return_reason(CloseReason::Drain),
            _ = env.pause.wait() => break None,
        };
        match (alarm, clock.as_ref()) {
            (Alarm::Park, Some(c)) if !busy_ab.get() && !busy_ba.get() => {
                let eof = [eof_ab.get(), eof_ba.get()];
                let last = c.last().unwrap_or_else(Instant::now);
                return (Ended::Parked { eof, last }, [ab.get(), ba.get()]);
            }
            (Alarm::Park, Some(c)) => c.postpone(Instant::now()),
            _ => break return_reason(CloseReason::Idle),
        }
    };
    let result = match stop {
        Some(r) => r,
        None => {
            let quiet = || !busy_ab.get() && !busy_ba.get();
            let settled = monoio::select! {
                r = settle(run.as_mut(), quiet) => r,
                _ = close.wait() => return_reason(CloseReason::Drain),
            };
            match settled {
                Some(r) => r,
                None => {
                    let eof = [eof_ab.get(), eof_ba.get()];
                    return (Ended::Paused { eof }, [ab.get(), ba.get()]);
                }
            }
        }
    };
    let reason = match result {
        Ok(()) => CloseReason::Normal,
        Err(Fatal::Reset) => CloseReason::Reset,
        Err(Fatal::Closed(reason)) => reason,
    };
    if reason != CloseReason::Normal {
        // RST both: the peer of a reset side learns of it, and drain/idle leave no TIME_WAIT.
        splice::set_reset_on_close(a.as_raw_fd());
        splice::set_reset_on_close(b.as_raw_fd());
    }
    (Ended::Closed(reason), [ab.get(), ba.get()])
}

/// Ends once the core's sweep found no byte moved in either direction for the idle timeout, or
/// for `park_after` (never without a clock). One clock per pair, in the core's slab: no
/// per-pair timer.
async fn alarm(clock: Option<&IdleClock<'_>>) -> Alarm {
    match clock {
        Some(c) => c.alarm().await,
        None => std::future::pending().await,
    }
}

/// Runs both directions; finishes when both finish, or at the first error (dropping the other).
async fn both_or_first_error<F1, F2>(
    mut f1: Pin<&mut F1>,
    mut f2: Pin<&mut F2>,
) -> Result<(), Fatal>
where
    F1: Future<Output = Result<(), Fatal>>,
    F2: Future<Output = Result<(), Fatal>>,
{
    let (mut done1, mut done2) = (false, false);
    poll_fn(|cx| {
        if !done1 && let Poll::Ready(r) = f1.as_mut().poll(cx) {
            r?;
            done1 = true;
        }
        if !done2 && let Poll::Ready(r) = f2.as_mut().poll(cx) {
            r?;
            done2 = true;
        }
        if done1 && done2 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

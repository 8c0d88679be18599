//! (Child of `core`.) The core's side of its parking lot (`relay/lot.rs`): a relay that went
//! quiet for `park_after` hands its sockets and a compact record to the lot and its task ends;
//! one task per core waits, through the core's own driver (io_uring PollAdd or monoio's
//! epoll), for the lot's epoll fd to be readable and resumes each woken pair's relay from its
//! counters, the way an adopted pair resumes. The tick closes parked pairs past the idle
//! timeout; drain closes them; a hand-over exports them with the paused ones.

use std::future::poll_fn;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;

use monoio::net::TcpStream;
use tracing::{Instrument, debug, error, info_span, warn};

use super::{Core, Held, relay_task};
use crate::core_msg::Parked as HandedOver;
use crate::pair_table::PairId;
use crate::relay::lot::{Parked, WAKE_BATCH};
use crate::relay::throttle::BandwidthLimits;
use crate::relay::{CloseReason, Resume, splice};
use crate::stats::CoreStats;

/// The core's part of a parked pair's record (the lot keeps its sockets, EOF flags and idle
/// time). 72 bytes: the pair's number, its counters, and what it holds (guards, the rare
/// boxed extras and throttles).
pub(crate) struct ParkedRelay {
    seq: u64,
    bytes: [u64; 2],
    held: Held,
}

/// One parked pair as the lot holds it.
pub(crate) type ParkedPair = Parked<ParkedRelay>;

/// A second fd of `s`'s socket (close-on-exec).
fn dup(s: &TcpStream) -> std::io::Result<OwnedFd> {
    // SAFETY: the fd is open for as long as `s` lives, which outlasts the borrow.
    unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) }.try_clone_to_owned()
}

/// Lets the core's other tasks run once (after a full batch of wake-ups).
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

impl Core {
    /// Whether quiet pairs park (`park_after` set and the lot's epoll working).
    pub(crate) fn parks(&self) -> bool {
        self.park_after.get().is_some()
    }

    fn parked_gauge(&self) {
        let n = self.lot.as_ref().map_or(0, |l| l.len());
        self.stats().parked_pairs.store(n as u64, Ordering::Relaxed);
    }

    /// Pairs parked now.
    pub(crate) fn parked(&self) -> usize {
        self.lot.as_ref().map_or(0, |l| l.len())
    }

    /// A relay found its pair quiet: its sockets and record go to the lot. Should the lot
    /// refuse them (an epoll error, parking given up), the pair relays on in a new task.
    pub(crate) fn park_quiet(
        self: &Rc<Self>,
        id: PairId,
        streams: [TcpStream; 2],
        held: Held,
        at: Resume,
    ) {
        let Some(lot) = self.lot.as_ref().filter(|_| self.parks()) else {
            self.resume(id, streams, held, at);
            return;
        };
        // Duplicates, not the streams' own fds: on io_uring the relay's cancelled readiness
        // waits hold those until their completions arrive (the driver closes them then).
        let fds: [OwnedFd; 2] = match (dup(&streams[0]), dup(&streams[1])) {
            (Ok(a), Ok(b)) => [a, b],
            (a, b) => {
                // The fd limit: the pair stays a task (parking is tried again `park_after`
                // later); the duplicate made, if any, closes without touching the socket.
                drop((a, b));
                debug!(pair = %id, "no fd to park a quiet pair; it relays on");
                self.resume(id, streams, held, at);
                return;
            }
        };
        drop(streams);
        let parked = Parked {
            fds,
            eof: at.eof,
            last: at.last.unwrap_or_else(Instant::now),
            pair: ParkedRelay {
                seq: id.seq,
                bytes: at.bytes,
                held,
            },
        };
        match lot.park(parked) {
            Ok(()) => {
                CoreStats::inc(&self.stats().parks);
                self.parked_gauge();
                self.parked_one();
            }
            Err((p, e)) => {
                debug!(pair = %id, error = %e, "cannot park a quiet pair; it relays on");
                self.resume_parked(p);
            }
        }
    }

    /// Starts the relay task of a pair from `at` (after the lot, or instead of it).
    fn resume(self: &Rc<Self>, id: PairId, streams: [TcpStream; 2], held: Held, at: Resume) {
        self.live.set(self.live.get() + 1);
        let span = info_span!("pair", pair = %id, core = self.id.0);
        let task = relay_task(self.clone(), id, streams, held, Some(Box::new(at)));
        self.spawn(task.instrument(span));
    }

    fn resume_parked(self: &Rc<Self>, p: ParkedPair) {
        let Parked {
            fds: [a, b],
            eof,
            last,
            pair: ParkedRelay { seq, bytes, held },
        } = p;
        let id = PairId { core: self.id, seq };
        let adopt = |fd: OwnedFd| TcpStream::from_std(std::net::TcpStream::from(fd));
        let at = Resume {
            bytes,
            eof,
            last: Some(last),
        };
        // Each fd is closed by `from_std` when it fails (the peer sees a FIN, then a reset
        // when the other is written to: this happens only when the driver is out of memory).
        match (adopt(a), adopt(b)) {
            (Ok(a), Ok(b)) => self.resume(id, [a, b], held, at),
            (a, b) => {
                warn!(pair = %id, "cannot resume a parked pair's socket; pair reset");
                for s in [a, b].into_iter().flatten() {
                    splice::set_reset_on_close(s.as_raw_fd());
                }
                self.close_held(id, held, bytes, CloseReason::Reset);
            }
        }
    }

    /// Closes a pair that is no longer relaying (its sockets closed or about to be).
    fn close_held(&self, id: PairId, held: Held, bytes: [u64; 2], reason: CloseReason) {
        let Held {
            guards,
            extras,
            throttle,
        } = held;
        drop((guards, extras));
        self.bandwidth.end(throttle);
        debug!(pair = %id, reason = reason.as_str(), a_to_b = bytes[0], b_to_a = bytes[1], "parked pair closed");
        self.pair_closed(id, reason, bytes);
    }

    /// Closes a pair taken out of the lot: RST both sockets (idle, drain, reset: no TIME_WAIT,
    /// the peers learn of it), count the close and emit its event.
    fn close_parked(&self, p: ParkedPair, reason: CloseReason) {
        for fd in &p.fds {
            splice::set_reset_on_close(fd.as_raw_fd());
        }
        drop(p.fds);
        let ParkedRelay { seq, bytes, held } = p.pair;
        self.close_held(PairId { core: self.id, seq }, held, bytes, reason);
    }

    /// The tick: parked pairs with no byte moved for the idle timeout close as `Idle`.
    pub(crate) fn expire_parked(&self, now: Instant) {
        let (Some(lot), Some(idle)) = (&self.lot, self.shared.config.idle_timeout) else {
            return;
        };
        let expired = lot.expire(now, idle);
        if expired.is_empty() {
            return;
        }
        // The gauge first: whoever sees a close event sees the pair gone from the lot.
        self.parked_gauge();
        for p in expired {
            self.close_parked(p, CloseReason::Idle);
        }
    }

    /// Drain's end: every parked pair closes as `Drain`.
    pub(crate) fn close_all_parked(&self) {
        let Some(lot) = &self.lot else { return };
        let all = lot.take_all();
        self.parked_gauge();
        for p in all {
            self.close_parked(p, CloseReason::Drain);
        }
    }

    /// A hand-over's export: the parked pairs leave as paused ones do (quiet, pipes empty).
    pub(crate) fn export_parked(&self) -> Vec<HandedOver> {
        let Some(lot) = &self.lot else {
            return Vec::new();
        };
        let all = lot.take_all();
        self.parked_gauge();
        all.into_iter()
            .map(|p| {
                let ParkedRelay { seq, bytes, held } = p.pair;
                let limits = held
                    .throttle
                    .as_ref()
                    .map_or(BandwidthLimits::UNLIMITED, |t| t.limits);
                self.bandwidth.end(held.throttle);
                CoreStats::dec(&self.stats().live_pairs);
                HandedOver {
                    id: PairId { core: self.id, seq },
                    streams: p.fds.map(std::net::TcpStream::from),
                    bytes,
                    eof: p.eof,
                    limits,
                }
            })
            .collect()
    }

    /// Parking failed for good (the lot's epoll cannot be waited on): every parked pair
    /// resumes and no pair parks again.
    fn give_up_parking(self: &Rc<Self>, e: &std::io::Error) {
        error!(core = self.id.0, error = %e, "parking lot failed; pairs stay tasks");
        self.park_after.set(None);
        if let Some(lot) = &self.lot {
            let all = lot.take_all();
            self.parked_gauge();
            for p in all {
                self.resume_parked(p);
            }
        }
    }

    /// Resumes the pairs whose sockets reported (one batch); a reset of a side whose
    /// direction had ended closes its pair.
    fn wake_parked(self: &Rc<Self>) -> usize {
        let Some(lot) = &self.lot else { return 0 };
        let woken = lot.wake();
        let n = woken.len();
        if n > 0 {
            self.parked_gauge();
        }
        for w in woken {
            if w.reset {
                self.close_parked(w.parked, CloseReason::Reset);
            } else {
                CoreStats::inc(&self.stats().unparks);
                self.resume_parked(w.parked);
            }
        }
        n
    }
}

/// The task of a core's parking lot: waits for the lot's epoll fd through the core's driver,
/// resumes what woke, until the core closes all connections. No extra thread, no timer.
pub(crate) async fn serve_lot(core: Rc<Core>) {
    let Some(lot) = &core.lot else { return };
    // monoio 0.2.4 has no readiness wait on an arbitrary fd; a readiness wait is a PollAdd on
    // the fd (io_uring) or a registration in the driver's epoll, whatever the fd is. The
    // stream type is only a carrier: nothing but `readable` is ever called on it.
    let watch = lot
        .watch_fd()
        .and_then(|fd| monoio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(fd)));
    let watch = match watch {
        Ok(w) => w,
        Err(e) => return core.give_up_parking(&e),
    };
    loop {
        monoio::select! {
            r = watch.readable(false) => {
                if let Err(e) = r {
                    return core.give_up_parking(&e);
                }
            }
            _ = core.close_all.wait() => return,
        }
        if core.wake_parked() == WAKE_BATCH {
            yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ParkedPair;

    /// What a parked pair costs in its core's lot besides the slab's spare room: the record
    /// (two fds, EOF flags, the last byte's instant, the pair's number, counters, guards and
    /// the boxes of its rare parts). A task per pair was ~1.3 KiB.
    #[test]
    fn a_parked_record_is_small() {
        let n = size_of::<ParkedPair>();
        eprintln!("parked record: {n} bytes");
        assert!(n <= 128, "a parked pair's record is {n} bytes");
    }
}

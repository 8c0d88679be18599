//! Idle deadlines of a core's pairs, swept by the core's tick instead of one monoio timer per
//! pair: a `Sleep` is ~640 bytes of every idle pair's future plus a timer-wheel entry, a clock
//! here is one slab slot of ~64 bytes. The sweep raises two alarms: `Idle` (the idle timeout:
//! the pair closes) and `Park` (quiet for `park_after` since its relay started: the relay parks
//! the pair if neither direction is mid-burst). Precision is the core's tick (100 ms by
//! default), which is nothing against idle timeouts of minutes or a park after 2 s.
//!
//! Core-local (`RefCell`); no borrow is held across an await.

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// `Park` alarms one sweep raises at most. Bounds the work of one tick, and the fds parking
/// holds at once: a parking pair holds two duplicated fds until the driver has closed its
/// streams' own (on io_uring, once the relay's cancelled readiness waits complete), so 10,000
/// pairs parking in one tick would briefly need 20,000 more fds. At the default 100 ms tick
/// this parks 2,560 pairs a second.
pub(crate) const MAX_PARKS_PER_SWEEP: usize = 256;

/// What a pair's clock calls its relay for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alarm {
    /// No byte moved for the idle timeout: the pair closes.
    Idle,
    /// No byte moved for `park_after` since the relay (re)started: the pair may park.
    Park,
}

/// One pair's clock: when a byte last moved, when its relay task (re)started, what the sweep
/// found, and the relay task to wake.
struct Clock {
    last: Instant,
    since: Instant,
    alarm: Option<Alarm>,
    waker: Option<Waker>,
}

/// The clocks of the relaying pairs of one core. Bounded by the core's live pairs (each pair
/// holds at most one clock, removed when its relay ends).
#[derive(Default)]
pub(crate) struct IdleClocks {
    clocks: RefCell<Slab<Clock>>,
}

impl IdleClocks {
    /// Starts a clock for a new pair; it stops when the returned guard drops.
    #[cfg(test)]
    pub(crate) fn start(&self, now: Instant) -> IdleClock<'_> {
        self.resume(now, now)
    }

    /// Starts a clock for a relay that (re)starts at `now`, a byte having last moved at `last`
    /// (a parked pair keeps its idle time across the park).
    pub(crate) fn resume(&self, last: Instant, now: Instant) -> IdleClock<'_> {
        let key = self.clocks.borrow_mut().insert(Clock {
            last,
            since: now,
            alarm: None,
            waker: None,
        });
        IdleClock { clocks: self, key }
    }

    /// Raises the alarm of every clock whose last byte moved `idle` or more before `now`
    /// (`Idle`), or, failing that, whose pair moved no byte for `park` since its relay
    /// started (`Park`), and wakes its relay. O(live pairs) per call; the core calls it from
    /// its tick.
    pub(crate) fn sweep(&self, now: Instant, idle: Option<Duration>, park: Option<Duration>) {
        let mut wake = Vec::new();
        let mut parks = 0;
        for (_, c) in self.clocks.borrow_mut().iter_mut() {
            if c.alarm == Some(Alarm::Idle) {
                continue;
            }
            let quiet = now.saturating_duration_since(c.last);
            let alarm = if idle.is_some_and(|i| quiet >= i) {
                Some(Alarm::Idle)
            } else if parks < MAX_PARKS_PER_SWEEP
                && c.alarm.is_none()
                && park.is_some_and(|p| now.saturating_duration_since(c.last.max(c.since)) >= p)
            {
                parks += 1;
                Some(Alarm::Park)
            } else {
                None
            };
            if alarm.is_some() && c.alarm != alarm {
                c.alarm = alarm;
                wake.extend(c.waker.take());
            }
        }
        // Woken after the borrow ends: a waker may run code that touches the clocks.
        for w in wake {
            w.wake();
        }
    }

    /// Clocks running.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.clocks.borrow().len()
    }
}

/// One pair's running clock; removed from its core's clocks on drop.
pub(crate) struct IdleClock<'a> {
    clocks: &'a IdleClocks,
    key: usize,
}

impl IdleClock<'_> {
    /// A byte moved now.
    pub(crate) fn touch(&self, now: Instant) {
        if let Some(c) = self.clocks.clocks.borrow_mut().get_mut(self.key) {
            c.last = now;
        }
    }

    /// When a byte last moved.
    pub(crate) fn last(&self) -> Option<Instant> {
        self.clocks.clocks.borrow().get(self.key).map(|c| c.last)
    }

    /// The pair could not park now (a direction was mid-burst): the next `Park` alarm comes
    /// `park` after `now` at the earliest.
    pub(crate) fn postpone(&self, now: Instant) {
        if let Some(c) = self.clocks.clocks.borrow_mut().get_mut(self.key) {
            c.since = now;
            if c.alarm == Some(Alarm::Park) {
                c.alarm = None;
            }
        }
    }

    /// Ends once a sweep raised an alarm (`Idle` stays raised; `Park` is taken).
    pub(crate) async fn alarm(&self) -> Alarm {
        poll_fn(|cx| {
            let mut clocks = self.clocks.clocks.borrow_mut();
            match clocks.get_mut(self.key) {
                Some(c) => match c.alarm {
                    Some(Alarm::Park) => {
                        c.alarm = None;
                        Poll::Ready(Alarm::Park)
                    }
                    Some(Alarm::Idle) => Poll::Ready(Alarm::Idle),
                    None => {
                        c.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                },
                None => Poll::Ready(Alarm::Idle),
            }
        })
        .await
    }
}

impl Drop for IdleClock<'_> {
    fn drop(&mut self) {
        self.clocks.clocks.borrow_mut().try_remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::Context;

    #[test]
    fn a_clock_expires_only_after_idle_without_a_touch() {
        let clocks = IdleClocks::default();
        let t0 = Instant::now();
        let idle = Duration::from_secs(10);
        let clock = clocks.start(t0);
        let mut cx = Context::from_waker(Waker::noop());
        let mut wait = pin!(clock.alarm());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        clocks.sweep(t0 + Duration::from_secs(9), Some(idle), None);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        clock.touch(t0 + Duration::from_secs(5));
        clocks.sweep(t0 + Duration::from_secs(14), Some(idle), None);
        assert!(wait.as_mut().poll(&mut cx).is_pending(), "touched at 5 s");
        clocks.sweep(t0 + Duration::from_secs(15), Some(idle), None);
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(Alarm::Idle));
    }

    #[test]
    fn a_quiet_pair_is_called_to_park_then_idles_out() {
        let clocks = IdleClocks::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let (idle, park) = (Some(s(10)), Some(s(2)));
        // Resumed at 1 s from a park, its last byte at 0: parking counts from the resume.
        let clock = clocks.resume(t0, t0 + s(1));
        let mut cx = Context::from_waker(Waker::noop());
        clocks.sweep(t0 + s(2), idle, park);
        assert!(
            pin!(clock.alarm()).poll(&mut cx).is_pending(),
            "1 s since resume"
        );
        clocks.sweep(t0 + s(3), idle, park);
        assert_eq!(pin!(clock.alarm()).poll(&mut cx), Poll::Ready(Alarm::Park));
        // Taken: pending again until the next sweep; a busy pair postpones its park.
        assert!(pin!(clock.alarm()).poll(&mut cx).is_pending());
        clock.postpone(t0 + s(4));
        clocks.sweep(t0 + s(5), idle, park);
        assert!(
            pin!(clock.alarm()).poll(&mut cx).is_pending(),
            "postponed at 4 s"
        );
        clocks.sweep(t0 + s(10), idle, park);
        assert_eq!(pin!(clock.alarm()).poll(&mut cx), Poll::Ready(Alarm::Idle));
        assert_eq!(clock.last(), Some(t0));
    }

    #[test]
    fn one_sweep_calls_a_bounded_number_of_pairs_to_park() {
        let clocks = IdleClocks::default();
        let t0 = Instant::now();
        let n = MAX_PARKS_PER_SWEEP + 10;
        let all: Vec<_> = (0..n).map(|_| clocks.start(t0)).collect();
        let mut cx = Context::from_waker(Waker::noop());
        let mut called = |all: &[IdleClock<'_>]| -> Vec<usize> {
            (0..all.len())
                .filter(|&i| pin!(all[i].alarm()).poll(&mut cx) == Poll::Ready(Alarm::Park))
                .collect()
        };
        let park = Some(Duration::from_secs(2));
        let t = t0 + Duration::from_secs(3);
        clocks.sweep(t, None, park);
        let first = called(&all);
        assert_eq!(first.len(), MAX_PARKS_PER_SWEEP);
        // Those called park (their clocks stop) or, busy, postpone; the rest are called next.
        for i in first {
            all[i].postpone(t);
        }
        clocks.sweep(t, None, park);
        assert_eq!(called(&all).len(), n - MAX_PARKS_PER_SWEEP);
    }

    #[test]
    fn a_dropped_clock_leaves_the_core() {
        let clocks = IdleClocks::default();
        let a = clocks.start(Instant::now());
        let b = clocks.start(Instant::now());
        assert_eq!(clocks.len(), 2);
        drop(a);
        assert_eq!(clocks.len(), 1);
        drop(b);
        assert_eq!(clocks.len(), 0);
    }
}

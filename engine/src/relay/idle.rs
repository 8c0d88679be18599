//! Idle deadlines of a core's pairs, swept by the core's tick instead of one monoio timer per
//! pair: a `Sleep` is ~640 bytes of every idle pair's future plus a timer-wheel entry, a clock
//! here is one slab slot of ~48 bytes. Precision is the core's tick (100 ms by default), which
//! is nothing against idle timeouts of minutes.
//!
//! Core-local (`RefCell`); no borrow is held across an await.

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// One pair's clock: when a byte last moved, and the relay task to wake once it idled.
struct Clock {
    last: Instant,
    expired: bool,
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
    pub(crate) fn start(&self, now: Instant) -> IdleClock<'_> {
        let key = self.clocks.borrow_mut().insert(Clock {
            last: now,
            expired: false,
            waker: None,
        });
        IdleClock { clocks: self, key }
    }

    /// Marks every clock whose last byte moved `idle` or more before `now` as expired and
    /// wakes its relay. O(live pairs) per call; the core calls it from its tick.
    pub(crate) fn sweep(&self, now: Instant, idle: Duration) {
        let mut wake = Vec::new();
        for (_, c) in self.clocks.borrow_mut().iter_mut() {
            if !c.expired && now.saturating_duration_since(c.last) >= idle {
                c.expired = true;
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

    /// Ends once a sweep found the pair idle.
    pub(crate) async fn expired(&self) {
        poll_fn(|cx| {
            let mut clocks = self.clocks.clocks.borrow_mut();
            match clocks.get_mut(self.key) {
                Some(c) if !c.expired => {
                    c.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                _ => Poll::Ready(()),
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
        let mut wait = pin!(clock.expired());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        clocks.sweep(t0 + Duration::from_secs(9), idle);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        clock.touch(t0 + Duration::from_secs(5));
        clocks.sweep(t0 + Duration::from_secs(14), idle);
        assert!(wait.as_mut().poll(&mut cx).is_pending(), "touched at 5 s");
        clocks.sweep(t0 + Duration::from_secs(15), idle);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
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

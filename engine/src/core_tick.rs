//! (Child of `core`.) The core's clock and end: the tick (idle sweep, parked pairs past their
//! idle timeout, the memory release after parking, pair expiry), the mailbox loop, and drain.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Core;
use crate::config::RELEASE_MEMORY_EVERY;
use crate::events::PairEvent;
use crate::relay::CloseReason;
use crate::stats::CoreStats;

impl Core {
    /// Ticks (expiry, idle sweep) every `tick` until the core closes all connections.
    pub(crate) async fn tick_until_closed(self: Rc<Self>) {
        let mut every = monoio::time::interval(self.shared.config.tick);
        loop {
            monoio::select! {
                _ = every.tick() => self.tick(),
                _ = self.close_all.wait() => break,
            }
        }
    }

    /// Handles mailbox messages until a drain is asked.
    pub(crate) async fn serve_mailbox(self: &Rc<Self>) {
        while self.drain_grace.get().is_none() {
            monoio::select! {
                msg = self.mailbox().recv() => self.handle(msg),
                _ = self.stop_accept.wait() => {}
            }
        }
    }

    /// Drain: accepting stopped; waiting sides close now; live pairs get the grace the drain
    /// message gave; then all close and the mailbox closes.
    pub(crate) async fn drain(self: &Rc<Self>) {
        let grace = self.drain_grace.get().unwrap_or_default();
        for (id, conn) in self.table.borrow_mut().clear() {
            drop(conn);
            self.bandwidth.forget(id.seq);
            self.shared
                .emit(self.id, PairEvent::closed(id, CloseReason::Drain, [0, 0]));
        }
        self.update_gauges();
        let deadline = Instant::now() + grace;
        // Bounded: at most grace / 10 ms rounds. Parked pairs may still finish in the grace.
        while self.live.get() + self.parked() > 0 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            monoio::time::sleep(left.min(Duration::from_millis(10))).await;
        }
        self.close_all.fire();
        self.close_all_parked();
        // Tasks end at their next poll after the signal; bounded at 2000 × 1 ms.
        for _ in 0..2000 {
            if self.tasks.get() == 0 {
                break;
            }
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(self.mailbox().close());
    }

    /// After pairs parked here, lets the binary's allocator return this thread's freed memory
    /// (`EngineConfig::release_memory`), at most once per `RELEASE_MEMORY_EVERY`.
    fn release_memory(&self, now: Instant) {
        let (parked, last) = self.release.get();
        let Some(release) = self.shared.config.release_memory.filter(|_| parked) else {
            return;
        };
        if last.is_some_and(|t| now.duration_since(t) < RELEASE_MEMORY_EVERY) {
            return;
        }
        release();
        CoreStats::inc(&self.stats().memory_releases);
        self.release.set((false, Some(now)));
    }

    /// A pair parked: the next tick may release the memory its task held.
    pub(crate) fn parked_one(&self) {
        let (_, last) = self.release.get();
        self.release.set((true, last));
    }

    /// Sweeps the idle clocks (idle timeouts, park alarms) and the parking lot, releases memory
    /// after parking, expires pairs whose TTL passed (closing their waiting sides).
    fn tick(&self) {
        let now = Instant::now();
        let (idle, park) = (self.shared.config.idle_timeout, self.park_after.get());
        if idle.is_some() || park.is_some() {
            self.clocks.sweep(now, idle, park);
        }
        self.expire_parked(now);
        self.release_memory(now);
        let expired = self.table.borrow_mut().tick(now);
        for e in expired {
            CoreStats::inc(&self.stats().expired);
            drop(e.waiting);
            self.bandwidth.forget(e.id.seq);
            self.shared.emit(
                self.id,
                PairEvent::closed(e.id, CloseReason::Expired, [0, 0]),
            );
        }
        self.update_gauges();
    }
}

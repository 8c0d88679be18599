//! [`EventHub`]: owns the engine's pair-event receiver on a dedicated thread, keeps the
//! [`PairBook`] current and fans events out to watchers over a bounded broadcast channel.
//! A watcher that falls more than [`WATCH_BACKLOG`] events behind misses the oldest ones and is
//! told how many (a gap marker), the engine never waits for a watcher.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tandem_engine::PairEvent;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use super::book::PairBook;
use crate::access_log::AccessLog;
use crate::quota::Quotas;

/// Events buffered per watcher before the slowest one lags, in events (~64 B each). At a
/// pair-creation rate of 50 000/s this is ~80 ms of events, enough for a watcher on loopback.
pub const WATCH_BACKLOG: usize = 4096;

/// How often the hub thread checks for [`EventHub::shutdown`] while the engine is quiet.
const STOP_POLL: Duration = Duration::from_millis(100);

/// One engine event as watchers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubEvent {
    /// Position in the hub's stream, from 1.
    pub seq: u64,
    /// When the hub received it.
    pub at: SystemTime,
    /// The event.
    pub event: PairEvent,
}

/// The hub's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubCounters {
    /// Events received from the engine.
    pub received: u64,
    /// Events watchers missed because they lagged (summed over watchers).
    pub lagged: u64,
    /// Watchers subscribed now.
    pub watchers: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    lagged: AtomicU64,
}

struct Shared {
    book: Mutex<PairBook>,
    /// Released by each pair's close event.
    quotas: Arc<Quotas>,
    counters: Counters,
    stop: AtomicBool,
}

/// The fan-out of the engine's pair events. Cheap to clone; [`EventHub::shutdown`] stops it.
#[derive(Clone)]
pub struct EventHub {
    shared: Arc<Shared>,
    tx: Arc<Mutex<Option<broadcast::Sender<HubEvent>>>>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Gets every event too; closed after the hub thread.
    access: Option<Arc<AccessLog>>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("counters", &self.counters())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventHub {
    /// Starts the hub thread on the receiver returned by `tandem_engine::Engine::start`, with
    /// no quotas.
    pub fn start(events: Receiver<PairEvent>) -> std::io::Result<Self> {
        Self::with_quotas(events, Arc::new(Quotas::default()))
    }

    /// [`EventHub::start`] with the proxy's `quotas`, whose pairs the events release.
    pub fn with_quotas(events: Receiver<PairEvent>, quotas: Arc<Quotas>) -> std::io::Result<Self> {
        Self::start_full(events, quotas, None)
    }

    /// [`EventHub::with_quotas`], handing every event to `access` as well (off the engine's
    /// path: the hub thread does it, and [`AccessLog::observe`] never blocks).
    pub fn start_full(
        events: Receiver<PairEvent>,
        quotas: Arc<Quotas>,
        access: Option<Arc<AccessLog>>,
    ) -> std::io::Result<Self> {
        let (tx, _) = broadcast::channel(WATCH_BACKLOG);
        let shared = Arc::new(Shared {
            book: Mutex::new(PairBook::default()),
            quotas,
            counters: Counters::default(),
            stop: AtomicBool::new(false),
        });
        let thread_tx = tx.clone();
        let thread_shared = shared.clone();
        let thread_access = access.clone();
        let thread = std::thread::Builder::new()
            .name("pair-events".into())
            .spawn(move || {
                pump(
                    &events,
                    &thread_tx,
                    &thread_shared,
                    thread_access.as_deref(),
                )
            })?;
        Ok(Self {
            shared,
            tx: Arc::new(Mutex::new(Some(tx))),
            thread: Arc::new(Mutex::new(Some(thread))),
            access,
        })
    }

    /// A new watcher of events from now on; `None` once the hub has shut down.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<HubEvent>> {
        lock(&self.tx).as_ref().map(broadcast::Sender::subscribe)
    }

    /// Counts `n` events a watcher missed.
    pub fn count_lagged(&self, n: u64) {
        self.shared.counters.lagged.fetch_add(n, Ordering::Relaxed);
    }

    /// The hub's counters.
    pub fn counters(&self) -> HubCounters {
        let c = &self.shared.counters;
        HubCounters {
            received: c.received.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
            watchers: lock(&self.tx)
                .as_ref()
                .map_or(0, |tx| tx.receiver_count() as u64),
        }
    }

    /// The quotas the events release.
    pub fn quotas(&self) -> &Arc<Quotas> {
        &self.shared.quotas
    }

    /// The book of tracked pairs (hold the guard briefly; never across an `.await`).
    pub fn book(&self) -> MutexGuard<'_, PairBook> {
        lock(&self.shared.book)
    }

    /// Stops the thread and ends every watcher's stream. Blocks for up to ~100 ms (the thread's
    /// poll period): call it from `spawn_blocking` or plain threads. Idempotent.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take()
            && t.join().is_err()
        {
            warn!("pair-event hub thread panicked");
        }
        if let Some(access) = &self.access {
            access.close();
        }
    }
}

/// The hub thread: until the engine's sender is gone or the hub stops.
fn pump(
    events: &Receiver<PairEvent>,
    tx: &broadcast::Sender<HubEvent>,
    shared: &Shared,
    access: Option<&AccessLog>,
) {
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        let event = match events.recv_timeout(STOP_POLL) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        seq += 1;
        let at = SystemTime::now();
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
        {
            let mut book = lock(&shared.book);
            match &event {
                PairEvent::Paired { id, .. } => book.paired(*id, at),
                PairEvent::Closed { id, .. } => book.closed(*id),
            }
        }
        shared.quotas.on_event(&event, at);
        if let Some(access) = access {
            access.observe(&event, at);
        }
        // No watcher is not an error: the event is simply not delivered.
        let _ = tx.send(HubEvent { seq, at, event });
    }
    debug!(events = seq, "pair-event hub stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_engine::{CloseReason, CoreId, PairId};

    fn paired(seq: u64) -> PairEvent {
        PairEvent::Paired {
            id: id(seq),
            sources: [
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ],
            waited: Duration::ZERO,
        }
    }

    fn id(seq: u64) -> PairId {
        PairId {
            core: CoreId(0),
            seq,
        }
    }

    #[tokio::test]
    async fn fans_out_in_order_tracks_the_book_and_lags_slow_watchers() {
        let (etx, erx) = std::sync::mpsc::sync_channel(16);
        let hub = EventHub::start(erx).unwrap();
        let mut fast = hub.subscribe().unwrap();
        let mut slow = hub.subscribe().unwrap();
        etx.send(paired(1)).unwrap();
        let first = fast.recv().await.unwrap();
        assert_eq!((first.seq, first.event.clone()), (1, paired(1)));
        assert_eq!(hub.book().len(), 1);
        etx.send(PairEvent::Closed {
            id: id(1),
            reason: CloseReason::Normal,
            bytes_a_to_b: 3,
            bytes_b_to_a: 4,
        })
        .unwrap();
        assert_eq!(fast.recv().await.unwrap().seq, 2);
        assert!(hub.book().is_empty());
        // The slow watcher has read nothing; push past its backlog.
        for i in 0..(WATCH_BACKLOG as u64 + 10) {
            etx.send(paired(100 + i)).unwrap();
            fast.recv().await.unwrap();
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 12),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(hub.counters().received, WATCH_BACKLOG as u64 + 12);
        assert_eq!(hub.counters().watchers, 2);
        tokio::task::spawn_blocking(move || hub.shutdown())
            .await
            .unwrap();
        assert!(matches!(
            fast.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
    }
}

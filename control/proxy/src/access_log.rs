//! The per-pair access log: one JSON line when a pair ends, written by the control plane from the
//! engine's events, never on the data path. The pair-event hub's thread hands each event to
//! [`AccessLog::observe`] (a `try_send` into a bounded queue: a full queue drops the line and
//! counts it); the writer thread joins `Paired` (sources, waiting time, when) and the operators
//! `requestConnection` named ([`AccessLog::annotate`]) with `Closed` (reason, bytes each way) and
//! writes the line.
//!
//! ```json
//! {"pair":"0-17","core":0,"sources":["198.51.100.7:50123","203.0.113.9:41000"],
//!  "requester":"hd-1","target":"hd-2","waited_ms":12,"duration_ms":5031,
//!  "bytes_a_to_b":1048576,"bytes_b_to_a":2048,"reason":"normal","at":"2026-12-07T06:30:00.000Z"}
//! ```

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};
use tandem_engine::{CloseReason, PairEvent, PairId};
use tracing::warn;

use crate::control_service::convert::rfc3339;
use crate::settings::AccessLogSettings;

/// Entries queued for the writer thread (~150 B each: ~600 KiB). At 50 000 pair ends per second
/// this is ~80 ms of lines; a writer slower than that for longer loses lines, counted in
/// [`AccessLog::dropped`], rather than slowing the hub (and never the engine).
pub const ACCESS_LOG_QUEUE: usize = 4096;

/// Pairs whose `Paired` or operators wait for their `Closed` (~200 B each: ~20 MiB), the pair
/// book's bound. Past it a pair's line is written without them.
pub const MAX_PENDING: usize = crate::control_service::MAX_TRACKED_PAIRS;

enum Entry {
    Event {
        event: PairEvent,
        at: SystemTime,
    },
    Operators {
        id: PairId,
        requester: String,
        target: String,
    },
}

/// What is known of a pair before it ends.
#[derive(Debug, Default, Clone)]
struct Pending {
    sources: Option<[SocketAddr; 2]>,
    waited: Option<Duration>,
    paired_at: Option<SystemTime>,
    requester: Option<String>,
    target: Option<String>,
}

/// The running access log. [`AccessLog::close`] flushes and stops it.
pub struct AccessLog {
    tx: Mutex<Option<SyncSender<Entry>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Lines written.
    pub written: Counter,
    /// Lines lost because the queue was full or the output failed.
    pub dropped: Counter,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("written", &self.written.get())
            .field("dropped", &self.dropped.get())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AccessLog {
    /// Registers the log's counters (lines written, lines lost) in `registry`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "tandem_access_log_lines",
            "Access-log lines written (one per ended pair)",
            self.written.clone(),
        );
        registry.register(
            "tandem_access_log_dropped",
            "Access-log lines lost (queue full or output failed)",
            self.dropped.clone(),
        );
    }

    /// Opens the file of `settings` (appending; created if absent) or stdout, and starts the
    /// writer thread.
    pub fn start(settings: &AccessLogSettings) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match &settings.file {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Box::new(io::stdout()),
        };
        Self::start_with(out, settings.blur_seconds)
    }

    /// Writes to `out`, blurred by `blur` (see [`AccessLogSettings::blur_seconds`]).
    pub fn start_with(out: Box<dyn Write + Send>, blur: Option<NonZeroU64>) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(ACCESS_LOG_QUEUE);
        let (written, dropped) = (Counter::default(), Counter::default());
        let counters = (written.clone(), dropped.clone());
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&rx, BufWriter::new(out), blur, &counters))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            written,
            dropped,
        })
    }

    fn send(&self, entry: Entry) {
        let sent = match lock(&self.tx).as_ref() {
            Some(tx) => tx.try_send(entry),
            None => return,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sent {
            self.dropped.inc();
        }
    }

    /// Hands an engine event over (never blocks).
    pub fn observe(&self, event: &PairEvent, at: SystemTime) {
        self.send(Entry::Event {
            event: event.clone(),
            at,
        });
    }

    /// Names the operators of a pair `requestConnection` issued (never blocks).
    pub fn annotate(&self, id: PairId, requester: &str, target: &str) {
        self.send(Entry::Operators {
            id,
            requester: requester.to_owned(),
            target: target.to_owned(),
        });
    }

    /// Writes what is queued, flushes and stops the thread. Idempotent; blocks until the queue is
    /// written (call from `spawn_blocking` or a plain thread).
    pub fn close(&self) {
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take()
            && t.join().is_err()
        {
            warn!("access-log thread panicked");
        }
    }
}

/// The writer thread: until every sender is gone.
fn write_lines(
    rx: &Receiver<Entry>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    blur: Option<NonZeroU64>,
    (written, dropped): &(Counter, Counter),
) {
    let mut pending: HashMap<PairId, Pending> = HashMap::new();
    loop {
        let entry = match rx.try_recv() {
            Ok(e) => e,
            Err(TryRecvError::Empty) => {
                // Idle: what is written reaches the file before we wait.
                if let Err(e) = out.flush() {
                    warn!(error = %e, "access log flush failed");
                }
                match rx.recv() {
                    Ok(e) => e,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let Some(line) = apply(&mut pending, entry, blur) else {
            continue;
        };
        match writeln!(out, "{line}") {
            Ok(()) => {
                written.inc();
            }
            Err(e) => {
                dropped.inc();
                warn!(error = %e, "access log write failed");
            }
        }
    }
    let _ = out.flush();
}

/// Folds one entry into `pending`; returns the line when a pair ended.
fn apply(
    pending: &mut HashMap<PairId, Pending>,
    entry: Entry,
    blur: Option<NonZeroU64>,
) -> Option<Value> {
    match entry {
        Entry::Operators {
            id,
            requester,
            target,
        } => {
            if let Some(p) = known(pending, id) {
                p.requester = Some(requester);
                p.target = Some(target);
            }
            None
        }
        Entry::Event {
            event:
                PairEvent::Paired {
                    id,
                    sources,
                    waited,
                },
            at,
        } => {
            if let Some(p) = known(pending, id) {
                p.sources = Some(sources);
                p.waited = Some(waited);
                p.paired_at = Some(at);
            }
            None
        }
        Entry::Event {
            event:
                PairEvent::Closed {
                    id,
                    reason,
                    bytes_a_to_b,
                    bytes_b_to_a,
                },
            at,
        } => {
            let p = pending.remove(&id).unwrap_or_default();
            Some(line(id, &p, reason, [bytes_a_to_b, bytes_b_to_a], at, blur))
        }
    }
}

/// The pending record of `id`; `None` when [`MAX_PENDING`] pairs are pending already.
fn known(pending: &mut HashMap<PairId, Pending>, id: PairId) -> Option<&mut Pending> {
    if pending.len() >= MAX_PENDING && !pending.contains_key(&id) {
        return None;
    }
    Some(pending.entry(id).or_default())
}

/// The JSON line of a pair that ended at `at`.
fn line(
    id: PairId,
    p: &Pending,
    reason: CloseReason,
    bytes: [u64; 2],
    at: SystemTime,
    blur: Option<NonZeroU64>,
) -> Value {
    let duration = p
        .paired_at
        .map(|since| at.duration_since(since).unwrap_or_default());
    let (at, sources, waited, duration, bytes) = match blur {
        None => (
            at,
            p.sources.map(|s| s.map(|a| a.to_string())),
            p.waited,
            duration,
            bytes,
        ),
        Some(every) => (
            floor_time(at, every.get()),
            p.sources.map(|s| s.map(|a| a.ip().to_string())),
            p.waited.map(round_secs),
            duration.map(round_secs),
            bytes.map(power_of_two),
        ),
    };
    let millis = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    json!({
        "pair": id.to_string(),
        "core": id.core.0,
        "sources": sources,
        "requester": p.requester,
        "target": p.target,
        "waited_ms": millis(waited),
        "duration_ms": millis(duration),
        "bytes_a_to_b": bytes[0],
        "bytes_b_to_a": bytes[1],
        "reason": reason.as_str(),
        "at": rfc3339(at),
    })
}

/// `t` rounded down to a multiple of `every` seconds since the epoch.
fn floor_time(t: SystemTime, every: u64) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs - secs % every.max(1))
}

/// `d` rounded to the nearest whole second.
fn round_secs(d: Duration) -> Duration {
    Duration::from_secs((d.as_millis().saturating_add(500) / 1000) as u64)
}

/// `n` rounded up to a power of two (0 stays 0).
fn power_of_two(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        n.checked_next_power_of_two().unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;

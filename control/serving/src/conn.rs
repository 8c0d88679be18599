//! One admitted connection's shared state: its phase, requests in flight, and whether it has been
//! cut. The connection's I/O ([`super::Guarded`]) enforces the phase's deadline; the server marks
//! progress through the [`Slot`].

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::admission::Admission;
use super::shutdown::Shutdown;
use super::table::ConnId;
use tandem_types::serving_config::Deadlines;

/// Where a connection is in its life; each phase but the last has a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Accepted, TLS handshake not done ([`Deadlines::handshake`]).
    Handshake = 0,
    /// Handshake done, no request answered yet ([`Deadlines::first_request`]).
    AwaitingRequest = 1,
    /// At least one request answered; idle between requests ([`Deadlines::idle`]).
    Active = 2,
    /// Authenticated and handed to a server with its own liveness checks (gRPC keepalive and
    /// maximum connection age): no kit deadline, never evicted.
    Established = 3,
}

impl Phase {
    fn from_u8(n: u8) -> Self {
        match n {
            0 => Self::Handshake,
            1 => Self::AwaitingRequest,
            2 => Self::Active,
            _ => Self::Established,
        }
    }
}

/// Why a connection was cut by the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CutReason {
    /// No TLS handshake within [`Deadlines::handshake`].
    HandshakeTimeout = 1,
    /// No request answered within [`Deadlines::first_request`] of the handshake.
    FirstRequestTimeout = 2,
    /// No request for [`Deadlines::idle`] after the last one.
    IdleTimeout = 3,
    /// Its source reached its cap with newer connections.
    EvictedSourceFull = 4,
    /// The listener reached its cap.
    EvictedFull = 5,
    /// The server is stopping and the connection was an idle HTTP/1 keep-alive (no request in
    /// flight, no byte of a next one received).
    Draining = 6,
}

impl CutReason {
    fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::HandshakeTimeout,
            2 => Self::FirstRequestTimeout,
            3 => Self::IdleTimeout,
            4 => Self::EvictedSourceFull,
            5 => Self::EvictedFull,
            6 => Self::Draining,
            _ => return None,
        })
    }

    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandshakeTimeout => "handshake_timeout",
            Self::FirstRequestTimeout => "first_request_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::EvictedSourceFull => "evicted_source_full",
            Self::EvictedFull => "evicted_full",
            Self::Draining => "draining",
        }
    }
}

/// State shared between a connection's I/O, its server and the admission table.
#[derive(Debug)]
pub(crate) struct ConnState {
    accepted: Instant,
    phase: AtomicU8,
    /// Milliseconds after `accepted` when the current phase's clock started (the last change of
    /// phase or the end of the last request).
    since_ms: AtomicU64,
    in_flight: AtomicU32,
    /// Bytes arrived since the last request ended (a next request is on its way).
    arrived: AtomicBool,
    /// The server drains the connection itself (HTTP/2 GOAWAY): never cut as an idle keep-alive.
    multiplexed: AtomicBool,
    cut: AtomicU8,
    pub(crate) notify: Arc<Notify>,
}

impl ConnState {
    pub(crate) fn new(accepted: Instant, phase: Phase) -> Arc<Self> {
        Arc::new(Self {
            accepted,
            phase: AtomicU8::new(phase as u8),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            arrived: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
            cut: AtomicU8::new(0),
            notify: Arc::new(Notify::new()),
        })
    }

    fn stamp(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.accepted).as_millis();
        self.since_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn enter(&self, phase: Phase, now: Instant) {
        self.stamp(now);
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Records that bytes arrived (part of a request, or a whole one).
    pub(crate) fn arrived(&self) {
        if !self.arrived.load(Ordering::Relaxed) {
            self.arrived.store(true, Ordering::Release);
        }
    }

    /// An HTTP/1 keep-alive between requests: a request answered, none in flight, no byte of
    /// the next one received. Such a connection is closed at once when the server stops.
    pub(crate) fn is_idle_keep_alive(&self) -> bool {
        self.phase() == Phase::Active
            && self.in_flight.load(Ordering::Acquire) == 0
            && !self.arrived.load(Ordering::Acquire)
            && !self.multiplexed.load(Ordering::Acquire)
    }

    /// Marks the connection cut (first reason wins) and wakes its I/O. `true` if this call cut it.
    pub(crate) fn cut(&self, reason: CutReason) -> bool {
        let first = self
            .cut
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Why the connection was cut, if it was.
    pub(crate) fn cut_reason(&self) -> Option<CutReason> {
        CutReason::from_u8(self.cut.load(Ordering::Acquire))
    }

    /// When the current phase runs out, and what a cut then would be called.
    pub(crate) fn deadline(&self, d: &Deadlines) -> Option<(Instant, CutReason)> {
        let phase = self.phase();
        if phase != Phase::Handshake && self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.accepted + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        match phase {
            Phase::Handshake => Some((since + d.handshake, CutReason::HandshakeTimeout)),
            Phase::AwaitingRequest => {
                Some((since + d.first_request, CutReason::FirstRequestTimeout))
            }
            Phase::Active => Some((since + d.idle, CutReason::IdleTimeout)),
            Phase::Established => None,
        }
    }
}

/// A connection's slot: held by its I/O and its server, released when the last holder drops it.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Slot(Arc<SlotInner>);

#[derive(Debug)]
struct SlotInner {
    id: ConnId,
    state: Arc<ConnState>,
    admission: Admission,
    proven: AtomicBool,
    /// The accept loop's stop signal, once the loop has handed the connection to its task.
    drain: OnceLock<Shutdown>,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.admission.release(self.id);
    }
}

impl Slot {
    pub(crate) fn new(id: ConnId, state: Arc<ConnState>, admission: Admission) -> Self {
        Self(Arc::new(SlotInner {
            id,
            state,
            admission,
            proven: AtomicBool::new(false),
            drain: OnceLock::new(),
        }))
    }

    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.0.state
    }

    /// The TLS handshake is done: the first-request clock starts.
    pub fn handshaken(&self) {
        if self.0.state.phase() == Phase::Handshake {
            self.0.state.enter(Phase::AwaitingRequest, Instant::now());
        }
    }

    /// The peer is authenticated and its server has liveness checks of its own: no more kit
    /// deadlines, and the connection is never evicted.
    pub fn establish(&self) {
        self.prove();
        self.0.state.enter(Phase::Established, Instant::now());
    }

    /// Ties the connection to its accept loop's stop (set once, by the loop).
    pub(crate) fn drain_on(&self, stop: Shutdown) {
        let _ = self.0.drain.set(stop);
    }

    /// Whether the server serving this connection is stopping: the connection is being drained
    /// (answer what arrives with `Connection: close`, close an idle keep-alive at once).
    pub fn is_draining(&self) -> bool {
        self.0.drain.get().is_some_and(Shutdown::is_triggered)
    }

    /// Resolves once the server serving this connection starts stopping (never for a connection
    /// no accept loop serves).
    pub async fn draining(&self) {
        match self.0.drain.get() {
            Some(stop) => stop.clone().wait().await,
            None => std::future::pending().await,
        }
    }

    /// The server drains this connection itself (HTTP/2: GOAWAY, then the streams in flight
    /// finish), so the kit never closes it as an idle keep-alive.
    pub fn multiplexed(&self) {
        self.0.state.multiplexed.store(true, Ordering::Release);
    }

    /// Whether [`Slot::multiplexed`] was called.
    pub fn is_multiplexed(&self) -> bool {
        self.0.state.multiplexed.load(Ordering::Acquire)
    }

    /// A request started; the returned guard marks it answered when dropped.
    pub fn request(&self) -> RequestGuard {
        self.0.state.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    fn prove(&self) {
        if !self.0.proven.swap(true, Ordering::AcqRel) {
            self.0.admission.prove(self.0.id);
        }
    }

    pub(crate) fn count_cut(&self, reason: CutReason) {
        self.0.admission.count_cut(reason);
    }

    /// Counts a connection that began with a PROXY header it was not trusted to send.
    pub(crate) fn count_untrusted_header(&self) {
        let admission = &self.0.admission;
        admission
            .metrics()
            .count(admission.name(), "proxy_untrusted");
    }

    /// Counts a handshake or identity check that failed, unless the kit's own cut caused it.
    pub fn count_failed_handshake(&self) {
        if self.cut_reason().is_none() {
            self.0.admission.count_handshake_failed();
        }
    }

    /// Why the kit cut this connection, if it did.
    pub fn cut_reason(&self) -> Option<CutReason> {
        self.0.state.cut_reason()
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct RequestGuard(Slot);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let slot = &self.0;
        slot.prove();
        let state = &slot.0.state;
        if state.phase() != Phase::Established {
            state.enter(Phase::Active, Instant::now());
        }
        state.arrived.store(false, Ordering::Release);
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

//! One worker core: its pair table, pools and limiter (all `Rc`/`RefCell`, owned by the core),
//! its mailbox loop, the expiry tick and drain. Connections are handled in `accept.rs`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tracing::{Instrument, debug, info_span};

use crate::admission::{Limits, SniSlot};
use crate::config::EngineConfig;
pub(crate) use crate::core_msg::{CoreMsg, Handoff};
use crate::counted::TaskCount;
use crate::handle::{PairEvent, SniResolver};
use crate::limiter::BadTokenLimiter;
use crate::mailbox::Mailbox;
use crate::pair_table::{Arrival, PairId, PairTable, Port, Refusal, TableLimits};
use crate::relay::idle::IdleClocks;
use crate::relay::pipe_pool::{BufPool, PipePool};
use crate::relay::{self, CloseReason, RelayEnv};
use crate::signal::LocalSignal;
use crate::stats::CoreStats;
use crate::token::{CoreId, Token, TokenMap};

/// State shared by all cores and the handle (immutable or atomic only).
pub(crate) struct Shared {
    pub cores: Vec<CoreShared>,
    pub map: TokenMap,
    pub events: SyncSender<PairEvent>,
    pub config: EngineConfig,
    pub resolver: Arc<dyn SniResolver>,
    /// Accept loops still running, over all cores and ports (the last to stop on drain logs it).
    pub accepting: AtomicUsize,
}

/// The cross-thread face of one core.
pub(crate) struct CoreShared {
    pub mailbox: Mailbox<CoreMsg>,
    pub stats: CoreStats,
}

impl Shared {
    pub(crate) fn emit(&self, core: CoreId, ev: PairEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(ev) {
            CoreStats::inc(&self.cores[core.0].stats.events_dropped);
        }
    }
}

/// Counts an open connection of a core for as long as it lives.
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    core: CoreId,
}

impl ConnGuard {
    pub(crate) fn new(shared: Arc<Shared>, core: CoreId) -> Self {
        CoreStats::inc(&shared.cores[core.0].stats.open_conns);
        ConnGuard { shared, core }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        CoreStats::dec(&self.shared.cores[self.core.0].stats.open_conns);
    }
}

/// A connection that delivered its token, owned by the pair table while it waits.
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub prefix: Vec<u8>,
    pub _guard: ConnGuard,
    /// A TLS client's claim on the SNI budget, given back when the connection closes.
    pub sni: Option<SniSlot>,
}

/// The core-local state. Lives in an `Rc`; no borrow is held across an `.await`.
pub(crate) struct Core {
    pub id: CoreId,
    pub shared: Arc<Shared>,
    pub table: RefCell<PairTable<Conn>>,
    pub limiter: RefCell<BadTokenLimiter>,
    pub limits: Limits,
    pub pipes: PipePool,
    pub bufs: BufPool,
    /// Idle deadlines of the relaying pairs, swept by the tick.
    pub clocks: IdleClocks,
    pub stop_accept: LocalSignal,
    pub close_all: LocalSignal,
    pub drain_grace: Cell<Option<Duration>>,
    tasks: TaskCount,
    live: Cell<usize>,
}

impl Core {
    pub(crate) fn new(id: CoreId, shared: Arc<Shared>) -> Rc<Core> {
        let c = &shared.config;
        let limits = TableLimits {
            max_pairs: c.max_pairs_per_core,
            max_waiting: c.max_waiting_per_core,
            tomb_ttl: c.pair_ttl,
        };
        Rc::new(Core {
            id,
            table: RefCell::new(PairTable::new(limits)),
            limiter: RefCell::new(BadTokenLimiter::new(
                c.bad_token_limit,
                c.bad_token_window,
                c.bad_token_table,
            )),
            limits: Limits::new(&shared),
            pipes: PipePool::new(c.pipe_pool_size, c.pipe_size),
            bufs: BufPool::new(c.copy_pool_size, c.copy_buf_size),
            clocks: IdleClocks::default(),
            stop_accept: LocalSignal::new(),
            close_all: LocalSignal::new(),
            drain_grace: Cell::new(None),
            tasks: TaskCount::default(),
            live: Cell::new(0),
            shared,
        })
    }

    pub(crate) fn stats(&self) -> &CoreStats {
        &self.shared.cores[self.id.0].stats
    }

    fn mailbox(&self) -> &Mailbox<CoreMsg> {
        &self.shared.cores[self.id.0].mailbox
    }

    /// Spawns a task that drain waits for (counted until it ends).
    pub(crate) fn spawn<F: Future<Output = ()> + 'static>(self: &Rc<Self>, fut: F) {
        drop(monoio::spawn(self.tasks.wrap(fut)));
    }

    fn update_gauges(&self) {
        let t = self.table.borrow();
        let s = self.stats();
        s.waiting
            .store(t.waiting() as u64, std::sync::atomic::Ordering::Relaxed);
        s.issued_pairs
            .store(t.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Handles queued messages without waiting (called before a local token lookup so that a
    /// registration sent just before the client connected is seen).
    pub(crate) fn process_pending(self: &Rc<Self>) {
        for _ in 0..self.shared.config.mailbox_capacity {
            let Some(msg) = self.mailbox().try_recv() else {
                break;
            };
            self.handle(msg);
        }
    }

    fn handle(self: &Rc<Self>, msg: CoreMsg) {
        match msg {
            CoreMsg::Register {
                id,
                tokens,
                kind,
                ttl,
            } => {
                let now = Instant::now();
                if self
                    .table
                    .borrow_mut()
                    .register(id, tokens, kind, now, ttl)
                    .is_err()
                {
                    debug!(pair = %id, "pair table full; registration dropped");
                    self.shared.emit(
                        self.id,
                        PairEvent::closed(id, CloseReason::Cancelled, [0, 0]),
                    );
                }
            }
            CoreMsg::Cancel { seq } => {
                let found = self.table.borrow_mut().cancel(seq, Instant::now());
                if found.is_some() {
                    let id = PairId { core: self.id, seq };
                    self.shared.emit(
                        self.id,
                        PairEvent::closed(id, CloseReason::Cancelled, [0, 0]),
                    );
                }
            }
            CoreMsg::Arrive(h) => {
                CoreStats::inc(&self.stats().handoffs_in);
                let guard = ConnGuard::new(self.shared.clone(), self.id);
                match TcpStream::from_std(h.stream) {
                    Ok(stream) => {
                        let conn = Conn {
                            stream,
                            peer: h.peer,
                            prefix: h.prefix,
                            _guard: guard,
                            sni: None,
                        };
                        self.arrive(h.token, h.port, conn);
                    }
                    Err(e) => debug!(error = %e, "cannot adopt handed-off socket"),
                }
            }
            CoreMsg::Drain { grace } => {
                self.drain_grace.set(Some(grace));
                self.stop_accept.fire();
            }
        }
        self.update_gauges();
    }

    /// A connection with `token` arrives at its owning core.
    pub(crate) fn arrive(self: &Rc<Self>, token: Token, port: Port, conn: Conn) {
        let peer = conn.peer;
        let arrival = self
            .table
            .borrow_mut()
            .arrive(&token, port, conn, Instant::now());
        match arrival {
            Arrival::Waiting(id) => debug!(pair = %id, %peer, "first side waiting"),
            Arrival::Paired { id, a, b, setup } => {
                self.stats().pair_setup.observe(setup);
                self.start_relay(id, a, b);
            }
            Arrival::Refused { reason, conn } => {
                debug!(%peer, token = %token, reason = reason.as_str(), "token refused");
                self.stats().refusal(reason);
                if reason != Refusal::WaitingFull {
                    self.record_bad(peer.ip());
                }
                drop(conn);
            }
        }
        self.update_gauges();
    }

    /// Counts one bad preamble (token, short token, timeout, bad hello) against `ip` in the
    /// limiter and updates the tracked-sources gauge.
    pub(crate) fn record_bad(&self, ip: std::net::IpAddr) {
        let mut limiter = self.limiter.borrow_mut();
        limiter.record(ip, Instant::now());
        self.stats()
            .limited_sources
            .store(limiter.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn start_relay(self: &Rc<Self>, id: PairId, a: Conn, b: Conn) {
        let core = self.clone();
        let span = info_span!("pair", pair = %id, core = self.id.0);
        CoreStats::inc(&self.stats().paired);
        CoreStats::inc(&self.stats().live_pairs);
        self.live.set(self.live.get() + 1);
        self.shared.emit(self.id, PairEvent::Paired { id });
        self.spawn(relay_task(core, id, a, b).instrument(span));
    }

    /// Expires pairs whose TTL passed; closes their waiting sides.
    fn tick(&self) {
        let now = Instant::now();
        if let Some(idle) = self.shared.config.idle_timeout {
            self.clocks.sweep(now, idle);
        }
        let expired = self.table.borrow_mut().tick(now);
        for e in expired {
            CoreStats::inc(&self.stats().expired);
            drop(e.waiting);
            self.shared.emit(
                self.id,
                PairEvent::closed(e.id, CloseReason::Expired, [0, 0]),
            );
        }
        self.update_gauges();
    }
}

/// The task of one pair: relays until it closes, then counts the close and emits its event.
///
/// A plain function returning an `async move` block: the block captures each part of the two
/// connections once (an `async fn` would store its `Conn` arguments and the parts destructured
/// from them side by side), and the streams are borrowed by `relay`, not moved into it.
pub(crate) fn relay_task(core: Rc<Core>, id: PairId, a: Conn, b: Conn) -> impl Future<Output = ()> {
    let Conn {
        stream: sa,
        prefix: pa,
        _guard: ga,
        sni: sni_a,
        ..
    } = a;
    let Conn {
        stream: sb,
        prefix: pb,
        _guard: gb,
        sni: sni_b,
        ..
    } = b;
    // A ClientHello to replay and SNI budget slots are rare (TLS port only): boxed, so that
    // a plain pair's task does not carry their room.
    let extras = (!pa.is_empty() || !pb.is_empty() || sni_a.is_some() || sni_b.is_some())
        .then(|| Box::new((pa, pb, sni_a, sni_b)));
    async move {
        let env = RelayEnv {
            pipes: &core.pipes,
            bufs: &core.bufs,
            stats: core.stats(),
            idle: core.shared.config.idle_timeout,
            clocks: &core.clocks,
        };
        let prefixes: [&[u8]; 2] = match &extras {
            Some(e) => [&e.0, &e.1],
            None => [&[], &[]],
        };
        let (reason, bytes) = relay::relay(&sa, &sb, prefixes, &env, &core.close_all).await;
        drop((sa, sb, ga, gb, extras));
        debug!(
            reason = reason.as_str(),
            a_to_b = bytes[0],
            b_to_a = bytes[1],
            "pair closed"
        );
        let s = core.stats();
        CoreStats::dec(&s.live_pairs);
        CoreStats::inc(match reason {
            CloseReason::Normal => &s.closed_normal,
            CloseReason::Reset => &s.closed_reset,
            CloseReason::Idle => &s.closed_idle,
            _ => &s.closed_drain,
        });
        core.live.set(core.live.get() - 1);
        core.shared
            .emit(core.id, PairEvent::closed(id, reason, bytes));
    }
}

/// The body of a worker: listeners, tick, mailbox; returns after drain.
pub(crate) async fn run(core: Rc<Core>, listeners: Vec<(Port, std::net::TcpListener)>) {
    for (port, l) in listeners {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                let c = core.clone();
                core.spawn(crate::accept::accept_loop(c, l, port));
            }
            Err(e) => tracing::error!(core = core.id.0, error = %e, "cannot adopt listener"),
        }
    }
    let c = core.clone();
    core.spawn(async move {
        let mut every = monoio::time::interval(c.shared.config.tick);
        loop {
            monoio::select! {
                _ = every.tick() => c.tick(),
                _ = c.close_all.wait() => break,
            }
        }
    });
    while core.drain_grace.get().is_none() {
        monoio::select! {
            msg = core.mailbox().recv() => core.handle(msg),
            _ = core.stop_accept.wait() => {}
        }
    }
    drain(&core).await;
}

/// Drain: accepting stopped; waiting sides close now; live pairs get `grace`; then all close.
async fn drain(core: &Rc<Core>) {
    let grace = core.drain_grace.get().unwrap_or_default();
    for (id, conn) in core.table.borrow_mut().clear() {
        drop(conn);
        core.shared
            .emit(core.id, PairEvent::closed(id, CloseReason::Drain, [0, 0]));
    }
    core.update_gauges();
    let deadline = Instant::now() + grace;
    // Bounded: at most grace / 10 ms rounds.
    while core.live.get() > 0 && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        monoio::time::sleep(left.min(Duration::from_millis(10))).await;
    }
    core.close_all.fire();
    // Tasks end at their next poll after the signal; bounded at 2000 × 1 ms.
    for _ in 0..2000 {
        if core.tasks.get() == 0 {
            break;
        }
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(core.mailbox().close());
}

#[cfg(test)]
#[path = "future_size_tests.rs"]
mod future_size_tests;

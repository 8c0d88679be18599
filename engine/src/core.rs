//! One core's state: its pair table, pools, limits and idle clocks (all `Rc`/`RefCell`, owned
//! by the core), behind methods; what a message, an arrival, the tick and drain do to it; and
//! the task of one relaying pair. The worker's loops are in `worker.rs`, connections in
//! `accept.rs`; neither touches the state but through these methods.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tracing::{Instrument, debug, info_span, warn};

use crate::admission::{AcceptRefusal, Limits, SniSlot};
use crate::clienthello::ClientHelloInfo;
use crate::config::EngineConfig;
use crate::core_msg::{CoreMsg, Handoff};
use crate::counted::TaskCount;
use crate::events::PairEvent;
use crate::limiter::SniRefusal;
use crate::mailbox::{Mailbox, SendError};
use crate::pair_table::{Arrival, PairId, PairTable, Port, Refusal, TableLimits};
use crate::relay::bandwidth::Bandwidth;
use crate::relay::idle::IdleClocks;
use crate::relay::lot::ParkingLot;
use crate::relay::pipe_pool::{BufPool, PipePool};
use crate::relay::{CloseReason, Resume};
use crate::shared::{ConnGuard, Shared};
use crate::signal::LocalSignal;
use crate::stats::CoreStats;
use crate::token::{CoreId, Token};

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
    id: CoreId,
    shared: Arc<Shared>,
    table: RefCell<PairTable<Conn>>,
    limits: Limits,
    pipes: PipePool,
    bufs: BufPool,
    /// Idle deadlines of the relaying pairs, swept by the tick.
    clocks: IdleClocks,
    /// Bandwidth limits of limited pairs and the operator buckets they share.
    bandwidth: Bandwidth,
    stop_accept: LocalSignal,
    close_all: LocalSignal,
    drain_grace: Cell<Option<Duration>>,
    tasks: TaskCount,
    live: Cell<usize>,
    /// Binary upgrade: pause signal, parked pairs, adopted listeners (`core_handover.rs`).
    handover: handover::HandoverCell,
    /// Quiet pairs without a task (`core_park.rs`); `None` when `park_after` is unset or
    /// the lot's epoll could not be made.
    lot: Option<ParkingLot<park::ParkedRelay>>,
    /// `park_after` while the lot works (`None`: pairs never park).
    park_after: Cell<Option<Duration>>,
    /// Pairs parked since the last `release_memory` call, and when that was.
    release: Cell<(bool, Option<Instant>)>,
}

#[path = "core_handover.rs"]
mod handover;
#[path = "core_park.rs"]
mod park;
#[path = "core_relay.rs"]
mod relay_task;
#[path = "core_tick.rs"]
mod tick;
pub(crate) use park::serve_lot;
pub(crate) use relay_task::{Extras, Held, relay_task};

impl Core {
    pub(crate) fn new(id: CoreId, shared: Arc<Shared>) -> Rc<Core> {
        let c = &shared.config;
        let limits = TableLimits {
            max_pairs: c.max_pairs_per_core,
            max_waiting: c.max_waiting_per_core,
            tomb_ttl: c.pair_ttl,
        };
        let lot = c.park_after.and_then(|_| {
            ParkingLot::new()
                .inspect_err(|e| warn!(core = id.0, error = %e, "no parking lot; pairs stay tasks"))
                .ok()
        });
        let park_after = Cell::new(c.park_after.filter(|_| lot.is_some()));
        Rc::new(Core {
            id,
            lot,
            park_after,
            table: RefCell::new(PairTable::new(limits)),
            limits: Limits::new(&shared),
            pipes: PipePool::new(c.pipe_pool_size, c.pipe_size),
            bufs: BufPool::new(c.copy_pool_size, c.copy_buf_size),
            clocks: IdleClocks::default(),
            bandwidth: Bandwidth::new(shared.cores.len()),
            stop_accept: LocalSignal::new(),
            close_all: LocalSignal::new(),
            drain_grace: Cell::new(None),
            tasks: TaskCount::default(),
            live: Cell::new(0),
            handover: Default::default(),
            release: Cell::new((false, None)),
            shared,
        })
    }

    /// This core.
    pub(crate) fn id(&self) -> CoreId {
        self.id
    }

    /// The engine's settings.
    pub(crate) fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// This core's counters.
    pub(crate) fn stats(&self) -> &CoreStats {
        &self.shared.cores[self.id.0].stats
    }

    /// Fires when the core stops accepting (drain).
    pub(crate) fn stop_accept(&self) -> &LocalSignal {
        &self.stop_accept
    }

    /// Fires when every connection of the core closes (end of drain).
    pub(crate) fn close_all(&self) -> &LocalSignal {
        &self.close_all
    }

    /// Counts an open connection of this core until the guard drops.
    pub(crate) fn conn_guard(&self) -> ConnGuard {
        ConnGuard::new(self.shared.clone(), self.id)
    }

    /// The core that owns `token`.
    pub(crate) fn owner_of(&self, token: &Token) -> CoreId {
        self.shared.map.owner(token)
    }

    /// Hands a connection to the core that owns its token, through that core's mailbox.
    pub(crate) fn hand_off(&self, owner: CoreId, h: Handoff) -> Result<(), SendError<CoreMsg>> {
        self.shared.cores[owner.0]
            .mailbox
            .try_send(CoreMsg::Arrive(h))
    }

    /// Asks the engine's SNI resolver which pair side a ClientHello from `peer` joins.
    pub(crate) fn resolve(&self, hello: &ClientHelloInfo, peer: SocketAddr) -> Option<Token> {
        self.shared.resolver.resolve(hello, peer)
    }

    /// One of the engine's listeners stopped; true for the last one of all cores.
    pub(crate) fn listener_closed(&self) -> bool {
        self.shared.accepting.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Whether a connection just accepted on `port` from `source` may stay (refusals counted);
    /// `None`: a trusted proxy's connection, whose client is checked by [`Core::admit_source`]
    /// once its PROXY header names it.
    pub(crate) fn admit(&self, port: Port, source: Option<IpAddr>) -> Result<(), AcceptRefusal> {
        self.limits.admit(&self.shared, self.id, port, source)
    }

    /// The per-source checks for a proxied connection's client `ip` (refusals counted).
    pub(crate) fn admit_source(&self, port: Port, ip: IpAddr) -> Result<(), AcceptRefusal> {
        self.limits.admit_source(&self.shared, self.id, port, ip)
    }

    /// An SNI budget slot for a routed hello from `ip` naming `domain` (refusals counted).
    pub(crate) fn sni_slot(&self, ip: IpAddr, domain: &str) -> Result<SniSlot, SniRefusal> {
        self.limits.sni_slot(&self.shared, self.id, ip, domain)
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
        s.waiting.store(t.waiting() as u64, Ordering::Relaxed);
        s.issued_pairs.store(t.len() as u64, Ordering::Relaxed);
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
                limits,
            } => {
                let now = Instant::now();
                let registered = self.table.borrow_mut().register(id, tokens, kind, now, ttl);
                if registered.is_ok() {
                    if let Some(l) = limits {
                        self.bandwidth.issued(id.seq, *l);
                    }
                } else {
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
                    self.bandwidth.forget(seq);
                    let id = PairId { core: self.id, seq };
                    self.shared.emit(
                        self.id,
                        PairEvent::closed(id, CloseReason::Cancelled, [0, 0]),
                    );
                }
            }
            CoreMsg::Arrive(h) => {
                CoreStats::inc(&self.stats().handoffs_in);
                let guard = self.conn_guard();
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
            CoreMsg::Pause { deadline, reply } => self.pause(deadline, reply),
            CoreMsg::Export { reply } => self.export(reply),
            CoreMsg::Adopt(import) => self.adopt(*import),
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
                self.start_relay(id, a, b, setup, None);
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
    pub(crate) fn record_bad(&self, ip: IpAddr) {
        self.limits.record_bad(self.stats(), ip);
    }

    fn start_relay(
        self: &Rc<Self>,
        id: PairId,
        a: Conn,
        b: Conn,
        waited: Duration,
        start: Option<Box<Resume>>,
    ) {
        let core = self.clone();
        let span = info_span!("pair", pair = %id, core = self.id.0);
        CoreStats::inc(&self.stats().paired);
        CoreStats::inc(&self.stats().live_pairs);
        self.live.set(self.live.get() + 1);
        let sources = [a.peer, b.peer];
        self.shared.emit(
            self.id,
            PairEvent::Paired {
                id,
                sources,
                waited,
            },
        );
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
        let rare = !pa.is_empty() || !pb.is_empty() || sni_a.is_some() || sni_b.is_some();
        let held = Held {
            guards: [ga, gb],
            extras: rare.then(|| {
                Box::new(Extras {
                    prefixes: [pa, pb],
                    sni: [sni_a, sni_b],
                })
            }),
            throttle: self.bandwidth.start(id.seq, Instant::now()),
        };
        self.spawn(relay_task(core, id, [sa, sb], held, start).instrument(span));
    }

    /// A pair ended (relaying or parked): counts its close and emits its event.
    pub(crate) fn pair_closed(&self, id: PairId, reason: CloseReason, bytes: [u64; 2]) {
        let s = self.stats();
        CoreStats::dec(&s.live_pairs);
        CoreStats::inc(match reason {
            CloseReason::Normal => &s.closed_normal,
            CloseReason::Reset => &s.closed_reset,
            CloseReason::Idle => &s.closed_idle,
            _ => &s.closed_drain,
        });
        self.shared
            .emit(self.id, PairEvent::closed(id, reason, bytes));
    }
}

#[cfg(test)]
#[path = "future_size_tests.rs"]
mod future_size_tests;

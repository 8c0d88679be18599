//! The control plane's view of the engine: start it, create and cancel pairs, read stats and
//! events, drain. `EngineHandle` is `Send + Sync` and uses std primitives only, so any runtime
//! (plain threads, tokio) can call it; no call blocks except `drain`, which joins the workers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::Rng;

use crate::config::{DriverInUse, EngineConfig};
use crate::core_msg::CoreMsg;
use crate::error::EngineError;
use crate::events::{PairEvent, SniResolver};
use crate::mailbox::{Mailbox, SendError};
use crate::pair_table::{PairId, PairKind, Port};
use crate::relay::throttle::BandwidthLimits;
use crate::shared::{CoreShared, Shared};
use crate::stats::{CoreStats, CoreStatsSnapshot};
use crate::token::{CoreId, Token, TokenMap};

/// A new pair: hand `side_a` to one party and `side_b` to the other.
#[derive(Clone, Debug)]
pub struct PairTicket {
    /// The pair (carries its owning core).
    pub id: PairId,
    /// Token of side A.
    pub side_a: Token,
    /// Token of side B.
    pub side_b: Token,
}

/// The addresses the engine listens on (ports resolved when 0 was asked).
#[derive(Clone, Copy, Debug)]
pub struct LocalAddrs {
    /// The pairing port.
    pub pairing: SocketAddr,
    /// The TLS port, if served.
    pub tls: Option<SocketAddr>,
}

/// Entry point.
#[derive(Debug)]
pub struct Engine;

/// Handle to a running engine. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addrs: LocalAddrs,
    next_seq: AtomicU64,
    stopping: AtomicBool,
    /// Set while a binary upgrade has the engine's pairs (new pairs are refused).
    exported: AtomicBool,
    /// A copy of every data-port listener, by port and core (see `start_on`).
    kept: Mutex<Vec<(Port, CoreId, std::net::TcpListener)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[path = "handle_handover.rs"]
mod handover_ops;
pub use handover_ops::Adopted;

impl Engine {
    /// Binds the ports, starts one pinned worker per configured core and returns the handle
    /// and the bounded stream of pair events.
    pub fn start(
        config: EngineConfig,
        resolver: Arc<dyn SniResolver>,
    ) -> Result<(EngineHandle, Receiver<PairEvent>), EngineError> {
        config.validate()?;
        let n = config.core_ids().len();
        let opts = crate::listener::ConnOptions {
            nodelay: config.nodelay,
            keepalive: config.keepalive,
        };
        let pairing =
            crate::listener::bind_port(config.pairing_addr, &config.pairing_more, n, opts)?;
        let tls = match config.tls_addr {
            Some(a) => Some(crate::listener::bind_port(a, &config.tls_more, n, opts)?),
            None => None,
        };
        // Core i: its member of every pairing address, then of every TLS address.
        let mut per_core: Vec<Vec<(Port, std::net::TcpListener)>> = Vec::with_capacity(n);
        let mut tls = tls.map(Vec::into_iter);
        for ls in pairing {
            let mut ls: Vec<_> = ls.into_iter().map(|l| (Port::Pairing, l)).collect();
            if let Some(t) = tls.as_mut().and_then(Iterator::next) {
                ls.extend(t.into_iter().map(|l| (Port::Tls, l)));
            }
            per_core.push(ls);
        }
        let (handle, events, _) =
            Self::start_on(config, resolver, per_core, TokenMap::new(n), false)?;
        Ok((handle, events))
    }

    /// Starts the workers on listeners already bound (`per_core[i]` for core `i`, at least the
    /// pairing port each) with token map `map`. With `defer`, the workers start without
    /// them and they are returned, for an adoption to hand over after the pairs it brings.
    pub(crate) fn start_on(
        config: EngineConfig,
        resolver: Arc<dyn SniResolver>,
        mut per_core: Vec<Vec<(Port, std::net::TcpListener)>>,
        map: TokenMap,
        defer: bool,
    ) -> Result<(EngineHandle, Receiver<PairEvent>, PerCore), EngineError> {
        let cpus = config.core_ids();
        let n = cpus.len();
        let first = |port: Port| {
            per_core
                .first()
                .and_then(|ls| ls.iter().find(|(p, _)| *p == port))
                .map(|(_, l)| l)
        };
        let pairing = first(Port::Pairing).ok_or(EngineError::Config {
            key: "pairing_addr",
            reason: "no pairing listener".into(),
        })?;
        let addrs = LocalAddrs {
            pairing: local(pairing, config.pairing_addr)?,
            tls: match (first(Port::Tls), config.tls_addr) {
                (Some(l), Some(a)) => Some(local(l, a)?),
                _ => None,
            },
        };
        let sockets: usize = per_core.iter().map(Vec::len).sum();
        // The engine's own copy of every listener: a binary upgrade hands these on (and takes
        // them back after a failed one) while the accept loops have stopped.
        let mut kept = Vec::new();
        for (i, ls) in per_core.iter().enumerate() {
            for (port, l) in ls {
                let copy = l.try_clone().map_err(|source| EngineError::Bind {
                    addr: addrs.pairing,
                    source,
                })?;
                kept.push((*port, CoreId(i), copy));
            }
        }
        let (tx, rx) = sync_channel(config.events_capacity);
        let cores = (0..n)
            .map(|_| CoreShared {
                mailbox: Mailbox::new(config.mailbox_capacity),
                stats: CoreStats::default(),
            })
            .collect();
        let shared = Arc::new(Shared {
            cores,
            map,
            events: tx,
            // Every socket's accept loop (several per port when it has several addresses).
            accepting: AtomicUsize::new(sockets),
            config,
            resolver,
        });
        let mut threads = Vec::with_capacity(n);
        let mut failure = None;
        let deferred = if defer {
            std::mem::take(&mut per_core)
        } else {
            Vec::new()
        };
        for (i, cpu) in cpus.into_iter().enumerate().rev() {
            let listeners = per_core.pop().unwrap_or_default();
            match crate::runtime::spawn_worker(CoreId(i), cpu, shared.clone(), listeners) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let handle = EngineHandle {
            inner: Arc::new(Inner {
                shared,
                addrs,
                next_seq: AtomicU64::new(1),
                stopping: AtomicBool::new(false),
                exported: AtomicBool::new(false),
                kept: Mutex::new(kept),
                threads: Mutex::new(threads),
            }),
        };
        if let Some(e) = failure {
            let _ = handle.shutdown();
            return Err(e);
        }
        Ok((handle, rx, deferred))
    }
}

/// Listeners by core (`[i]` for core `i`).
pub(crate) type PerCore = Vec<Vec<(Port, std::net::TcpListener)>>;

fn local(l: &std::net::TcpListener, addr: SocketAddr) -> Result<SocketAddr, EngineError> {
    l.local_addr()
        .map_err(|source| EngineError::Bind { addr, source })
}

impl EngineHandle {
    /// The bound addresses (each port's primary: its configured address's).
    pub fn local_addrs(&self) -> LocalAddrs {
        self.inner.addrs
    }

    /// Every address each port is bound on, primary first (several when its host name
    /// resolved to several): `(pairing, tls)`.
    pub fn port_addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let kept = match self.inner.kept.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let (mut pairing, mut tls) = (Vec::new(), Vec::new());
        for (port, core, l) in kept.iter() {
            let Ok(addr) = l.local_addr() else { continue };
            match port {
                _ if core.0 != 0 => {}
                Port::Pairing => pairing.push(addr),
                Port::Tls => tls.push(addr),
            }
        }
        (pairing, tls)
    }

    /// Number of worker cores.
    pub fn cores(&self) -> usize {
        self.inner.shared.cores.len()
    }

    /// The configured lifetime of a new pair's tokens (what [`EngineHandle::create_pair`] uses).
    pub fn pair_ttl(&self) -> Duration {
        self.inner.shared.config.pair_ttl
    }

    /// The core that owns `token`.
    pub fn owner_of(&self, token: &Token) -> CoreId {
        self.inner.shared.map.owner(token)
    }

    /// Creates a pair with the configured TTL on a core chosen by load.
    pub fn create_pair(&self, kind: PairKind) -> Result<PairTicket, EngineError> {
        self.create_pair_with(kind, self.inner.shared.config.pair_ttl, None)
    }

    /// Creates a pair with `ttl`: on `core` if given (tests); else, when called on one of this
    /// engine's worker threads (an [`SniResolver`]), on that core, so the TLS client waits and
    /// relays where it was accepted with no hand-off, and its SNI budget slot stays with it;
    /// else by load (power of two choices over the cores' issued + live pairs).
    pub fn create_pair_with(
        &self,
        kind: PairKind,
        ttl: Duration,
        core: Option<CoreId>,
    ) -> Result<PairTicket, EngineError> {
        self.create_pair_limited(kind, ttl, core, BandwidthLimits::UNLIMITED)
    }

    /// [`EngineHandle::create_pair_with`] for a pair whose relay is held to `limits` (each
    /// direction to the pair's rate; all directions of the operator's pairs on the owning core
    /// to that core's share of the operator's rate).
    pub fn create_pair_limited(
        &self,
        kind: PairKind,
        ttl: Duration,
        core: Option<CoreId>,
        limits: BandwidthLimits,
    ) -> Result<PairTicket, EngineError> {
        if self.inner.stopping.load(Ordering::Acquire)
            || self.inner.exported.load(Ordering::Acquire)
        {
            return Err(EngineError::ShuttingDown);
        }
        let shared = &self.inner.shared;
        let chosen = core
            .filter(|c| c.0 < shared.cores.len())
            .or_else(|| crate::runtime::current_core(shared))
            .unwrap_or_else(|| self.pick_core());
        let (side_a, owner) = shared.map.token_for(chosen);
        let side_b = loop_token_for(&shared.map, owner);
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = PairId { core: owner, seq };
        let msg = CoreMsg::Register {
            id,
            tokens: [side_a, side_b],
            kind,
            ttl,
            limits: limits.is_limited().then(|| Box::new(limits)),
        };
        self.send(owner, msg)?;
        Ok(PairTicket { id, side_a, side_b })
    }

    fn pick_core(&self) -> CoreId {
        let cores = &self.inner.shared.cores;
        let n = cores.len();
        if n == 1 {
            return CoreId(0);
        }
        let mut rng = rand::rng();
        let a = rng.random_range(0..n);
        let b = (a + rng.random_range(1..n)) % n;
        let load = |i: usize| {
            let s = &cores[i].stats;
            s.issued_pairs.load(Ordering::Relaxed) + s.live_pairs.load(Ordering::Relaxed)
        };
        CoreId(if load(b) < load(a) { b } else { a })
    }

    fn send(&self, core: CoreId, msg: CoreMsg) -> Result<(), EngineError> {
        match self.inner.shared.cores[core.0].mailbox.try_send(msg) {
            Ok(()) => Ok(()),
            Err(SendError::Full(_)) => Err(EngineError::MailboxFull { core: core.0 }),
            Err(SendError::Closed(_)) => Err(EngineError::ShuttingDown),
        }
    }

    /// Cancels a pair that has not completed; its waiting side, if any, is closed.
    pub fn cancel_pair(&self, id: PairId) -> Result<(), EngineError> {
        if id.core.0 >= self.cores() {
            return Ok(());
        }
        self.send(id.core, CoreMsg::Cancel { seq: id.seq })
    }

    /// Per-core counters, read without locks.
    pub fn stats(&self) -> Vec<CoreStatsSnapshot> {
        self.inner
            .shared
            .cores
            .iter()
            .map(|c| c.stats.snapshot())
            .collect()
    }

    /// The driver each core runs on (`None` for a core still starting).
    pub fn drivers(&self) -> Vec<Option<DriverInUse>> {
        self.stats().into_iter().map(|s| s.driver).collect()
    }

    /// Stops accepting, lets pairs finish for up to `grace`, closes the rest, and joins the
    /// workers. Idempotent; later calls return at once.
    pub fn drain(&self, grace: Duration) -> Result<(), EngineError> {
        self.inner.stopping.store(true, Ordering::Release);
        for c in &self.inner.shared.cores {
            // Drain must get through even to a full mailbox: retry, bounded by 10 s.
            let mut msg = CoreMsg::Drain { grace };
            for _ in 0..10_000 {
                match c.mailbox.try_send(msg) {
                    Ok(()) | Err(SendError::Closed(_)) => break,
                    Err(SendError::Full(m)) => {
                        msg = m;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        let threads: Vec<_> = match self.inner.threads.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(p) => p.into_inner().drain(..).collect(),
        };
        let mut result = Ok(());
        for (i, t) in threads.into_iter().enumerate() {
            if t.join().is_err() {
                result = Err(EngineError::WorkerPanicked { core: i });
            }
        }
        result
    }

    /// `drain` with no grace.
    pub fn shutdown(&self) -> Result<(), EngineError> {
        self.drain(Duration::ZERO)
    }
}

fn loop_token_for(map: &TokenMap, core: CoreId) -> Token {
    // token_for returns a token of `core` except with probability < 2^-90; retry a few times.
    for _ in 0..8 {
        let (t, owner) = map.token_for(core);
        if owner == core {
            return t;
        }
    }
    map.token_for(core).0
}

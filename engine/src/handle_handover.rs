//! Binary upgrade on the handle (a child module of `handle`): pause and export every core into
//! a [`Bundle`], adopt a bundle (the next process, or this one after a failed upgrade), and
//! start an engine on inherited listeners.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use tracing::info;

use super::{Engine, EngineHandle, PerCore};
use crate::config::EngineConfig;
use crate::core_msg::{CoreExport, CoreImport, CoreMsg, Parked, WaitingConn};
use crate::events::{PairEvent, SniResolver};
use crate::handover::{Bundle, HandoverError, IssuedPair, ListenerRole, LivePair, WaitingSide};
use crate::mailbox::SendError;
use crate::pair_table::{Port, Taken};
use crate::token::TokenMap;

/// How long a core's mailbox may stay full before a hand-over message gives up, in
/// milliseconds of 1 ms retries (as `drain`).
const MAILBOX_RETRIES: usize = 10_000;
/// Extra time the handle waits for a core's answer beyond the pause deadline (a core busy
/// with a burst answers at its next mailbox turn).
const ANSWER_SLACK: Duration = Duration::from_secs(5);

/// What an adoption took in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Data-port listeners.
    pub listeners: usize,
    /// Issued pairs (with or without a waiting side).
    pub issued: usize,
    /// Waiting sides.
    pub waiting: usize,
    /// Live pairs.
    pub live: usize,
}

impl EngineHandle {
    fn send_blocking(&self, core: usize, mut msg: CoreMsg) -> Result<(), HandoverError> {
        let mailbox = &self.inner.shared.cores[core].mailbox;
        for _ in 0..MAILBOX_RETRIES {
            match mailbox.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(SendError::Closed(_)) => return Err(HandoverError::NotNow("engine stopped")),
                Err(SendError::Full(m)) => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        Err(HandoverError::NotNow("a core's mailbox stayed full"))
    }

    /// Pauses every core (no accepting; each relay stops between bursts, its pipes flushed to
    /// the destination; connections mid-preamble finish it), waiting up to `quiet_within`,
    /// then takes the listeners, issued pairs, waiting sides and live pairs out into a bundle.
    /// New pairs are refused until [`EngineHandle::adopt`]. Pairs that did not pause in time
    /// (a destination that stopped reading) stay and drain with the engine.
    pub fn export(&self, quiet_within: Duration) -> Result<Bundle, HandoverError> {
        if self.inner.stopping.load(Ordering::Acquire)
            || self.inner.exported.swap(true, Ordering::AcqRel)
        {
            return Err(HandoverError::NotNow("stopping or already handed over"));
        }
        match self.pause_and_export(quiet_within) {
            Ok(exports) => self.bundle(exports),
            Err(e) => {
                // A core stuck or stopped: serve on with what is left (the listeners again).
                self.resume_listeners();
                Err(e)
            }
        }
    }

    fn pause_and_export(&self, quiet_within: Duration) -> Result<Vec<CoreExport>, HandoverError> {
        let n = self.cores();
        let deadline = Instant::now() + quiet_within;
        let (tx, rx) = sync_channel(n);
        for core in 0..n {
            let reply = tx.clone();
            self.send_blocking(core, CoreMsg::Pause { deadline, reply })?;
        }
        // Every core answers once quiet or at the deadline: a hand-off between cores sent
        // before a core went quiet is in its owner's mailbox ahead of the Export below. A core
        // that does not answer in time is exported all the same (its Export waits in line).
        for _ in 0..n {
            if rx.recv_timeout(quiet_within + ANSWER_SLACK).is_err() {
                tracing::warn!("a core did not answer the pause in time");
                break;
            }
        }
        let (tx, rx) = sync_channel(n);
        for core in 0..n {
            self.send_blocking(core, CoreMsg::Export { reply: tx.clone() })?;
        }
        let mut exports: Vec<CoreExport> = Vec::with_capacity(n);
        for _ in 0..n {
            exports.push(
                rx.recv_timeout(quiet_within + ANSWER_SLACK)
                    .map_err(|_| HandoverError::NotNow("a core did not export"))?,
            );
        }
        Ok(exports)
    }

    /// After a failed export: every core serves its listeners again (the engine's copies).
    fn resume_listeners(&self) {
        let kept = match self.inner.kept.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let mut imports: Vec<CoreImport> =
            (0..self.cores()).map(|_| CoreImport::default()).collect();
        for (port, core, l) in kept.iter() {
            if let Ok(copy) = l.try_clone() {
                imports[core.0].listeners.push((*port, copy));
            }
        }
        drop(kept);
        for (core, import) in imports.into_iter().enumerate() {
            let _ = self.send_blocking(core, CoreMsg::Adopt(Box::new(import)));
        }
        self.inner.exported.store(false, Ordering::Release);
    }

    /// The cores' exports and the listeners' copies as one bundle; if a listener cannot be
    /// copied (no fd left), the pairs are adopted back and the listeners served again.
    fn bundle(&self, exports: Vec<CoreExport>) -> Result<Bundle, HandoverError> {
        let n = self.cores();
        let mut bundle = Bundle::new(n as u16, self.inner.shared.map.key());
        for e in exports {
            put_core(&mut bundle, e);
        }
        if let Err(e) = self.put_listeners(&mut bundle) {
            bundle.state.listeners.clear();
            let _ = self.adopt(&mut bundle);
            self.resume_listeners();
            return Err(e);
        }
        info!(
            live = bundle.state.live.len(),
            issued = bundle.state.issued.len(),
            sockets = bundle.state.fds,
            "engine exported"
        );
        Ok(bundle)
    }

    fn put_listeners(&self, bundle: &mut Bundle) -> Result<(), HandoverError> {
        let kept = match self.inner.kept.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        for (port, core, l) in kept.iter() {
            let copy = l
                .try_clone()
                .map_err(HandoverError::io("copying a listener"))?;
            let core = core.0 as u16;
            let role = match port {
                Port::Pairing => ListenerRole::Pairing { core },
                Port::Tls => ListenerRole::Tls { core },
            };
            bundle.push_listener(role, OwnedFd::from(copy));
        }
        Ok(())
    }

    /// Adopts the data-port listeners, issued pairs and live pairs of `bundle` (taking their
    /// sockets out of it; the control plane's listeners stay). The bundle must come from an
    /// engine with this engine's core count and token key.
    pub fn adopt(&self, bundle: &mut Bundle) -> Result<Adopted, HandoverError> {
        self.adopt_with(bundle, Vec::new())
    }

    /// [`EngineHandle::adopt`], with `more` listeners per core (an inherited engine's, held
    /// back until its pairs are in the tables: a client in the backlog finds its pair).
    fn adopt_with(&self, bundle: &mut Bundle, more: PerCore) -> Result<Adopted, HandoverError> {
        let n = self.cores();
        if bundle.state.cores as usize != n || bundle.state.token_key != self.inner.shared.map.key()
        {
            return Err(HandoverError::Mismatch(format!(
                "{} cores in the bundle, {n} here, or another token key",
                bundle.state.cores
            )));
        }
        let mut imports: Vec<CoreImport> = (0..n).map(|_| CoreImport::default()).collect();
        let mut got = Adopted::default();
        for (core, ls) in more.into_iter().enumerate().take(n) {
            got.listeners += ls.len();
            imports[core].listeners.extend(ls);
        }
        let listeners = bundle.state.listeners.clone();
        for l in listeners {
            let (port, core) = match l.role {
                ListenerRole::Pairing { core } => (Port::Pairing, core),
                ListenerRole::Tls { core } => (Port::Tls, core),
                _ => continue,
            };
            if let Some(fd) = bundle.take(l.fd) {
                imports[core as usize]
                    .listeners
                    .push((port, std::net::TcpListener::from(fd)));
                got.listeners += 1;
            }
        }
        let mut max_seq = 0;
        for p in std::mem::take(&mut bundle.state.issued) {
            max_seq = max_seq.max(p.id.seq);
            let waiting = p.waiting.and_then(|w| {
                let fd = bundle.take(w.fd)?;
                got.waiting += 1;
                let conn = WaitingConn {
                    stream: std::net::TcpStream::from(fd),
                    peer: w.peer,
                    port: w.port,
                    prefix: w.prefix,
                };
                Some((w.side, conn))
            });
            got.issued += 1;
            let taken = Taken {
                id: p.id,
                tokens: p.tokens,
                kind: p.kind,
                ttl_left: p.ttl_left,
                waiting,
            };
            imports[p.id.core.0].issued.push((taken, p.limits));
        }
        for p in std::mem::take(&mut bundle.state.live) {
            max_seq = max_seq.max(p.id.seq);
            let (Some(a), Some(b)) = (bundle.take(p.fds[0]), bundle.take(p.fds[1])) else {
                continue;
            };
            got.live += 1;
            imports[p.id.core.0].live.push(Parked {
                id: p.id,
                streams: [a.into(), b.into()],
                bytes: p.bytes,
                eof: p.eof,
                limits: p.limits,
            });
        }
        self.inner.next_seq.fetch_max(max_seq + 1, Ordering::AcqRel);
        // Two rounds: every core's pairs before any core's listeners. A core serving its
        // listeners at once may hand a client from its backlog to a core whose pairs are still
        // in the handle; each mailbox is FIFO, so the pairs are in every table before the first
        // handed-off client arrives there.
        let mut listeners = Vec::with_capacity(n);
        for (core, mut import) in imports.into_iter().enumerate() {
            listeners.push(std::mem::take(&mut import.listeners));
            self.send_blocking(core, CoreMsg::Adopt(Box::new(import)))?;
        }
        for (core, listeners) in listeners.into_iter().enumerate() {
            let import = CoreImport {
                listeners,
                ..CoreImport::default()
            };
            self.send_blocking(core, CoreMsg::Adopt(Box::new(import)))?;
        }
        self.inner.exported.store(false, Ordering::Release);
        info!(?got, "engine adopted a hand-over");
        Ok(got)
    }
}

fn put_core(bundle: &mut Bundle, e: CoreExport) {
    for (t, limits) in e.issued {
        let waiting = t.waiting.map(|(side, w)| WaitingSide {
            side,
            fd: bundle.push(OwnedFd::from(w.stream)),
            peer: w.peer,
            port: w.port,
            prefix: w.prefix,
        });
        bundle.state.issued.push(IssuedPair {
            id: t.id,
            tokens: t.tokens,
            kind: t.kind,
            ttl_left: t.ttl_left,
            waiting,
            limits,
        });
    }
    for p in e.live {
        let [a, b] = p.streams;
        let fds = [bundle.push(OwnedFd::from(a)), bundle.push(OwnedFd::from(b))];
        bundle.state.live.push(LivePair {
            id: p.id,
            fds,
            bytes: p.bytes,
            eof: p.eof,
            limits: p.limits,
        });
    }
}

impl Engine {
    /// Starts an engine on the data-port listeners of `bundle` (a binary upgrade's new
    /// process) with the old engine's token key, then adopts its pairs. `config` must name as
    /// many cores as the old engine had.
    pub fn start_inherited(
        config: EngineConfig,
        resolver: Arc<dyn SniResolver>,
        bundle: &mut Bundle,
    ) -> Result<(EngineHandle, Receiver<PairEvent>, Adopted), HandoverError> {
        config.validate()?;
        let n = config.core_ids().len();
        if bundle.state.cores as usize != n {
            return Err(HandoverError::Mismatch(format!(
                "the old engine ran {} cores, the settings name {n}",
                bundle.state.cores
            )));
        }
        let mut per_core: PerCore = (0..n).map(|_| Vec::new()).collect();
        let roles: Vec<_> = bundle.state.listeners.clone();
        for l in roles {
            let (port, core) = match l.role {
                ListenerRole::Pairing { core } => (Port::Pairing, core),
                ListenerRole::Tls { core } => (Port::Tls, core),
                _ => continue,
            };
            if let Some(fd) = bundle.take(l.fd) {
                per_core[core as usize].push((port, std::net::TcpListener::from(fd)));
            }
        }
        let map = TokenMap::with_key(n, bundle.state.token_key);
        let (handle, events, deferred) = Engine::start_on(config, resolver, per_core, map, true)?;
        let adopted = handle.adopt_with(bundle, deferred)?;
        Ok((handle, events, adopted))
    }
}

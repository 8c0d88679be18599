//! A core's part of a binary upgrade (a child module of `core`: it touches the core's state).
//!
//! `Pause` fires the core's hand-over signal: accept loops return (their listeners stay open:
//! the engine keeps a copy), each relay direction stops at its next readiness wait with its
//! pipe empty and the pair is parked with its sockets and counters; the core answers once no
//! pair relays and no connection is mid-preamble, or at the deadline. `Export` then takes the
//! pair table and the parked pairs out as plain sockets. `Adopt` is the reverse (the next
//! process, or this one taking everything back): listeners, issued pairs, waiting sides and
//! live pairs resume, each pair from its counters.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tracing::{debug, info, warn};

use super::{Conn, Core};
use crate::core_msg::{CoreExport, CoreImport, Parked, TakenPair, WaitingConn};
use crate::pair_table::{PairId, PairKind, Port, Side, Taken};
use crate::relay::Resume;
use crate::relay::throttle::BandwidthLimits;
use crate::signal::LocalSignal;
use crate::token::Token;

/// How often a pausing core looks whether it is quiet, in milliseconds: a pause takes a few
/// of these at most on a core whose pairs are between bursts.
const QUIET_POLL: Duration = Duration::from_millis(2);

/// The core's hand-over state: the current pause signal (a fresh one after each adoption) and
/// the pairs parked by the last pause; listeners offered to the worker's accept loops.
#[derive(Default)]
pub(crate) struct HandoverCell {
    signal: RefCell<LocalSignal>,
    parked: RefCell<Vec<Parked>>,
    listeners: RefCell<Vec<(Port, std::net::TcpListener)>>,
    offered: RefCell<LocalSignal>,
}

/// The port a waiting side came in on: an SNI pair's side A on the TLS port, any other side
/// on the pairing port (what the pair table checks on arrival).
fn port_of(kind: PairKind, side: Side) -> Port {
    match (kind, side) {
        (PairKind::Sni, Side::A) => Port::Tls,
        _ => Port::Pairing,
    }
}

/// `s` as a plain socket: a duplicate of its fd (close-on-exec), then `s` dropped. Not
/// `into_raw_fd`: on io_uring a just-cancelled readiness wait may still hold the fd, and
/// closing one of two fds of a socket sends nothing to the peer.
fn into_std(s: TcpStream) -> std::io::Result<std::net::TcpStream> {
    // SAFETY: the fd is open for as long as `s` lives, which outlasts the borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) }.try_clone_to_owned()?;
    drop(s);
    Ok(fd.into())
}

impl Core {
    /// The signal the current accept loops and relays stop on.
    pub(crate) fn pause_signal(&self) -> LocalSignal {
        self.handover.signal.borrow().clone()
    }

    /// Completes when listeners are offered to the worker (see [`Core::take_listeners`]).
    pub(crate) fn listeners_offered(&self) -> LocalSignal {
        self.handover.offered.borrow().clone()
    }

    /// Listeners adopted since the last call, for the worker to serve.
    pub(crate) fn take_listeners(&self) -> Vec<(Port, std::net::TcpListener)> {
        self.handover.offered.replace(LocalSignal::new());
        std::mem::take(&mut *self.handover.listeners.borrow_mut())
    }

    /// A relay stopped by the pause: keeps its sockets for the export.
    pub(crate) fn park(
        &self,
        id: PairId,
        streams: [TcpStream; 2],
        bytes: [u64; 2],
        eof: [bool; 2],
        limits: BandwidthLimits,
    ) {
        let [a, b] = streams;
        match (into_std(a), into_std(b)) {
            (Ok(a), Ok(b)) => self.handover.parked.borrow_mut().push(Parked {
                id,
                streams: [a, b],
                bytes,
                eof,
                limits,
            }),
            _ => warn!(pair = %id, "cannot duplicate a paused pair's socket; pair closed"),
        }
    }

    /// Connections accepted and still reading their preamble (neither waiting nor relaying).
    fn in_preamble(&self) -> u64 {
        let open = self.stats().open_conns.load(Ordering::Relaxed);
        let pairs = self.live.get() + self.parked();
        let held = self.table.borrow().waiting() as u64 + 2 * pairs as u64;
        open.saturating_sub(held)
    }

    /// Pause: stop accepting and relaying; answer once quiet or at `deadline`.
    pub(crate) fn pause(self: &Rc<Self>, deadline: Instant, reply: SyncSender<()>) {
        self.pause_signal().fire();
        let core = self.clone();
        self.spawn(async move {
            // Bounded by the deadline: at most (deadline - now) / QUIET_POLL rounds.
            while (core.live.get() > 0 || core.in_preamble() > 0) && Instant::now() < deadline {
                monoio::time::sleep(QUIET_POLL).await;
            }
            debug!(
                core = core.id.0,
                still_live = core.live.get(),
                "core paused"
            );
            let _ = reply.send(());
        });
    }

    /// Export: the pair table and the parked pairs, as plain sockets. Pairs still relaying
    /// (their destination stopped reading past the deadline) stay here and drain.
    pub(crate) fn export(&self, reply: SyncSender<CoreExport>) {
        let taken = self.table.borrow_mut().take_all(Instant::now());
        let issued: Vec<TakenPair> = taken
            .into_iter()
            .map(|t| (Taken {
                id: t.id,
                tokens: t.tokens,
                kind: t.kind,
                ttl_left: t.ttl_left,
                waiting: t.waiting.and_then(|(side, c): (Side, Conn)| {
                    let stream = into_std(c.stream)
                        .inspect_err(|e| warn!(pair = %t.id, error = %e, "cannot duplicate a waiting socket; closed"))
                        .ok()?;
                    let port = port_of(t.kind, side);
                    Some((side, WaitingConn { stream, peer: c.peer, port, prefix: c.prefix }))
                }),
            }, self.bandwidth.take_pending(t.id.seq)))
            .collect();
        let mut live = std::mem::take(&mut *self.handover.parked.borrow_mut());
        live.extend(self.export_parked());
        let moved = live.len() + issued.iter().filter(|(t, _)| t.waiting.is_some()).count();
        self.stats()
            .handed_over
            .fetch_add(moved as u64, Ordering::Relaxed);
        info!(
            core = self.id.0,
            live = live.len(),
            issued = issued.len(),
            "core handed over"
        );
        let _ = reply.send(CoreExport { issued, live });
    }

    /// Adopt: a fresh pause signal, the listeners to the worker, the issued pairs into the
    /// table (each waiting side arrives again), the live pairs relaying from their counters.
    pub(crate) fn adopt(self: &Rc<Self>, import: CoreImport) {
        if self.pause_signal().is_fired() {
            self.handover.signal.replace(LocalSignal::new());
        }
        if !import.listeners.is_empty() {
            self.handover
                .listeners
                .borrow_mut()
                .extend(import.listeners);
            self.handover.offered.borrow().fire();
        }
        let now = Instant::now();
        let mut adopted = 0u64;
        for (t, limits) in import.issued {
            let registered = self
                .table
                .borrow_mut()
                .register(t.id, t.tokens, t.kind, now, t.ttl_left);
            if registered.is_err() {
                debug!(pair = %t.id, "table full; adopted pair dropped");
                continue;
            }
            // Before its waiting side arrives: the partner may already be in the backlog.
            self.bandwidth.issued(t.id.seq, limits);
            if let Some((side, w)) = t.waiting {
                let Ok(stream) = TcpStream::from_std(w.stream) else {
                    continue;
                };
                let token: Token = t.tokens[usize::from(side == Side::B)];
                let conn = Conn {
                    stream,
                    peer: w.peer,
                    prefix: w.prefix,
                    _guard: self.conn_guard(),
                    sni: None,
                };
                adopted += 1;
                self.arrive(token, w.port, conn);
            }
        }
        for p in import.live {
            let [a, b] = p.streams;
            let conn = |s: std::net::TcpStream| -> Option<Conn> {
                let peer = s.peer_addr().ok()?;
                let stream = TcpStream::from_std(s).ok()?;
                Some(Conn {
                    stream,
                    peer,
                    prefix: Vec::new(),
                    _guard: self.conn_guard(),
                    sni: None,
                })
            };
            let (Some(a), Some(b)) = (conn(a), conn(b)) else {
                debug!(pair = %p.id, "an adopted pair's socket is gone; pair dropped");
                continue;
            };
            adopted += 1;
            // Taken again by the relay task when it starts (`Bandwidth::start`).
            self.bandwidth.issued(p.id.seq, p.limits);
            let resume = Resume {
                bytes: p.bytes,
                eof: p.eof,
                last: None,
            };
            self.start_relay(p.id, a, b, Duration::ZERO, Some(Box::new(resume)));
        }
        self.stats().adopted.fetch_add(adopted, Ordering::Relaxed);
        self.update_gauges();
    }
}

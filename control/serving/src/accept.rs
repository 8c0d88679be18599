//! The kit's accept loop, the one every TCP/TLS listener runs: accept, filter (per-source rate
//! limits), admit (or refuse and close), then run the caller's connection future as a tracked
//! task. Sockets connected elsewhere (the proxy path of the gRPC server) can be fed in beside the
//! listener under their own admission. On shutdown this process's listening fd closes at once
//! (never `shutdown(2)`: a supervisor may share the socket, and connections not yet accepted wait
//! in its backlog for the next process); every connection's [`Slot::draining`] fires, so its
//! server answers what arrives with `Connection: close` / GOAWAY and the kit closes idle
//! keep-alives; tasks get `grace` to finish, then are aborted.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, debug_span, warn};

use super::admission::Admission;
use super::conn::Slot;
use super::group::ListenerGroup;
use super::guarded::Guarded;
use super::proxied::{self, MAX_PENDING_HEADERS};
use super::shutdown::shutdown as stop_signal;

/// Back-off after an accept error such as `EMFILE`: the loop never spins and never stops.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Whether connections start with a TLS handshake (its deadline applies) or go straight to the
/// first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// A TLS handshake comes first.
    Tls,
    /// Plain TCP: the first request is due at once.
    None,
}

/// A check of each accepted peer before admission (`false` closes the socket at once).
type Filter = Box<dyn FnMut(SocketAddr) -> bool + Send>;

/// One listener's accept loop, configured, not yet running; [`Acceptor::serve`] runs it.
pub struct Acceptor {
    listener: ListenerGroup,
    admission: Admission,
    handshake: Handshake,
    grace: Duration,
    filter: Option<Filter>,
    injected: Option<(mpsc::Receiver<TcpStream>, Admission)>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("listener", &self.admission.name())
            .field("handshake", &self.handshake)
            .field("grace", &self.grace)
            .field("filtered", &self.filter.is_some())
            .field("injected", &self.injected.is_some())
            .finish()
    }
}

impl Acceptor {
    /// Accepts on `listener` (one socket or a [`ListenerGroup`], every member served in turn)
    /// under `admission`; no grace after shutdown (tasks are aborted at once), no filter,
    /// nothing injected.
    pub fn new(
        listener: impl Into<ListenerGroup>,
        admission: Admission,
        handshake: Handshake,
    ) -> Self {
        Self {
            listener: listener.into(),
            admission,
            handshake,
            grace: Duration::ZERO,
            filter: None,
            injected: None,
        }
    }

    /// After shutdown, how long connection tasks may finish before they are aborted.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Checks every accepted peer before admission; `false` closes the socket (e.g. over a
    /// per-source `tcp_rate_limits`). The filter logs its own refusals.
    pub fn filter(mut self, filter: impl FnMut(SocketAddr) -> bool + Send + 'static) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Also serves the sockets that arrive on `sockets`, admitted by `admission` (apart from the
    /// listener's, so that a flood on the listener never delays them).
    pub fn injected(mut self, sockets: mpsc::Receiver<TcpStream>, admission: Admission) -> Self {
        self.injected = Some((sockets, admission));
        self
    }

    /// Accepts until `shutdown` resolves, running `serve(io, peer, slot)` for each admitted
    /// connection as a tracked task.
    pub async fn serve<F, Fut>(self, shutdown: impl Future<Output = ()>, mut serve: F)
    where
        F: FnMut(Guarded<TcpStream>, SocketAddr, Slot) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self {
            mut listener,
            admission,
            handshake,
            grace,
            mut filter,
            injected,
        } = self;
        let (mut injected, injected_admission) = match injected {
            Some((rx, admission)) => (Some(rx), Some(admission)),
            None => (None, None),
        };
        let admit = |admission: &Admission, stream, peer| match handshake {
            Handshake::Tls => admission.admit(stream, peer),
            Handshake::None => admission.admit_plain(stream, peer),
        };
        let mut tasks = JoinSet::new();
        // Connections from trusted balancers reading their PROXY header (bounded by
        // MAX_PENDING_HEADERS; aborted when the loop ends). Injected sockets never carry one.
        let proxy = admission.config().proxy_protocol.clone();
        let mut pending = JoinSet::new();
        // Fired when the loop ends: every connection then drains (see the module docs).
        let (stopping, drain) = stop_signal();
        tokio::pin!(shutdown);
        loop {
            let (admitted, peer, name) = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                Some(read) = pending.join_next(), if !pending.is_empty() => {
                    let Ok(Some((stream, client))) = read else { continue };
                    if filter.as_mut().is_some_and(|allow| !allow(client)) {
                        continue;
                    }
                    (admit(&admission, stream, client), client, admission.name())
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // An IPv4 client of a dual-stack listener is its IPv4 address everywhere.
                        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                        if let Some(p) = proxy.as_ref().filter(|p| p.trusts(peer.ip())) {
                            if pending.len() >= MAX_PENDING_HEADERS {
                                admission.metrics().count(admission.name(), "proxy_pending_full");
                                continue;
                            }
                            let read = proxied::client(stream, peer, p.deadline, admission.clone());
                            pending.spawn(read);
                            continue;
                        }
                        if filter.as_mut().is_some_and(|allow| !allow(peer)) {
                            continue;
                        }
                        (admit(&admission, stream, peer), peer, admission.name())
                    }
                    Err(e) => {
                        warn!(listener = admission.name(), error = %e, "accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                Some(stream) = recv(&mut injected) => {
                    let Some(admission) = &injected_admission else { continue };
                    match stream.peer_addr() {
                        Ok(peer) => (admit(admission, stream, peer), peer, admission.name()),
                        Err(e) => {
                            debug!(listener = admission.name(), error = %e, "injected socket already closed");
                            continue;
                        }
                    }
                }
            };
            let Some((io, slot)) = admitted else { continue };
            slot.drain_on(drain.clone());
            let span = debug_span!("connection", listener = name, %peer);
            tasks.spawn(serve(io, peer, slot).instrument(span));
        }
        // Only this process's fds: each socket itself stays open where a supervisor holds it.
        drop(listener);
        stopping.trigger();
        pending.abort_all();
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} });
        if drained.await.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// The next injected socket, or never when there is no injection channel (or it has closed).
async fn recv(injected: &mut Option<mpsc::Receiver<TcpStream>>) -> Option<TcpStream> {
    match injected {
        Some(rx) => match rx.recv().await {
            Some(stream) => Some(stream),
            None => {
                *injected = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Accepts on `listener` (every member of a group) until `shutdown` resolves, admitting each
/// connection through `admission` and running `serve(io, peer, slot)` for it as a tracked task
/// (an [`Acceptor`] with `grace`).
pub async fn serve_connections<F, Fut>(
    listener: impl Into<ListenerGroup>,
    admission: Admission,
    handshake: Handshake,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    serve: F,
) where
    F: FnMut(Guarded<TcpStream>, SocketAddr, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    Acceptor::new(listener, admission, handshake)
        .grace(grace)
        .serve(shutdown, serve)
        .await;
}

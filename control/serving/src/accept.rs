//! The kit's accept loop: accept, admit (or refuse and close), then run the caller's connection
//! future as a tracked task. On shutdown the listener closes at once; tasks get `grace` to finish,
//! then are aborted.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{Instrument, debug_span, warn};

use super::admission::Admission;
use super::conn::Slot;
use super::guarded::Guarded;

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

/// Accepts on `listener` until `shutdown` resolves, admitting each connection through `admission`
/// and running `serve(io, peer, slot)` for it as a tracked task.
pub async fn serve_connections<F, Fut>(
    listener: TcpListener,
    admission: Admission,
    handshake: Handshake,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    mut serve: F,
) where
    F: FnMut(Guarded<TcpStream>, SocketAddr, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(listener = admission.name(), error = %e, "accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let admitted = match handshake {
                    Handshake::Tls => admission.admit(stream, peer),
                    Handshake::None => admission.admit_plain(stream, peer),
                };
                let Some((io, slot)) = admitted else { continue };
                let span = debug_span!("connection", listener = admission.name(), %peer);
                tasks.spawn(serve(io, peer, slot).instrument(span));
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

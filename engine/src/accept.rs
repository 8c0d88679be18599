//! Accepting on a data port and reading the preamble: the 32-byte token (pairing port) or the
//! ClientHello (TLS port), each under its deadline; then local pairing or a handoff to the owner.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use monoio::net::{TcpListener, TcpStream};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::admission::SniSlot;
use crate::clienthello::ClientHelloReader;
use crate::mailbox::SendError;
use crate::pair_table::Port;
use crate::preamble::TokenReader;
use crate::relay::splice::{self, Step};
use crate::stats::CoreStats;
use crate::token::Token;
use crate::worker::{Conn, ConnGuard, Core, CoreMsg, Handoff};

/// Bytes read per recv while buffering a ClientHello.
const HELLO_CHUNK: usize = 4096;

/// Accepts until drain; accept errors (EMFILE, ENFILE, ...) back off and never end the loop.
pub(crate) async fn accept_loop(core: Rc<Core>, listener: TcpListener, port: Port) {
    let cfg = &core.shared.config;
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = core.stop_accept.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                CoreStats::inc(&core.stats().accept_errors);
                warn!(core = core.id.0, error = %e, "accept failed; backing off");
                monoio::select! {
                    _ = monoio::time::sleep(cfg.accept_backoff) => continue,
                    _ = core.stop_accept.wait() => break,
                }
            }
        };
        CoreStats::inc(&core.stats().accepted);
        if let Err(e) = splice::set_cloexec(stream.as_raw_fd()) {
            warn!(core = core.id.0, error = %e, "cannot set FD_CLOEXEC on accepted socket");
        }
        if let Err(reason) = core.admit(port, peer.ip()) {
            debug!(core = core.id.0, %peer, reason = reason.as_str(), "refused at accept");
            continue;
        }
        let guard = ConnGuard::new(core.shared.clone(), core.id);
        let span = info_span!("conn", core = core.id.0, %peer, port = ?port);
        core.spawn(conn_task(core.clone(), stream, peer, port, guard).instrument(span));
    }
    // Synchronously: with io_uring the fd's close is an op the ring runs later.
    splice::stop_listening(listener.as_raw_fd());
    drop(listener);
    if core.shared.accepting.fetch_sub(1, Ordering::AcqRel) == 1 {
        info!("every data port is closed: no new connections, live pairs drain");
    }
}

/// The task of one accepted connection: reads its preamble and pairs or hands it off; ends
/// early when the core closes all connections.
pub(crate) async fn conn_task(
    core: Rc<Core>,
    stream: TcpStream,
    peer: SocketAddr,
    port: Port,
    guard: ConnGuard,
) {
    let close = core.close_all.clone();
    monoio::select! {
        _ = serve(core, stream, peer, port, guard) => {},
        _ = close.wait() => {},
    }
}

fn set_options(core: &Core, stream: &TcpStream) {
    let cfg = &core.shared.config;
    // Our splice/recv/send calls must never sleep on the core thread, whatever the driver.
    // SAFETY: the fd is open for as long as `stream` lives, which outlives this borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let _ = socket2::SockRef::from(&fd).set_nonblocking(true);
    let _ = stream.set_nodelay(cfg.nodelay);
    if let Some(idle) = cfg.keepalive {
        let _ = stream.set_tcp_keepalive(Some(idle), Some(idle / 4), Some(4));
    }
}

pub(crate) async fn serve(
    core: Rc<Core>,
    stream: TcpStream,
    peer: SocketAddr,
    port: Port,
    guard: ConnGuard,
) {
    set_options(&core, &stream);
    let cfg = &core.shared.config;
    let read = match port {
        Port::Pairing => monoio::time::timeout(cfg.token_deadline, read_token(&stream)).await,
        Port::Tls => {
            monoio::time::timeout(cfg.hello_deadline, read_hello(&core, &stream, peer)).await
        }
    };
    let Preamble { token, prefix, sni } = match read {
        Ok(Ok(x)) => x,
        Ok(Err(Failed::Aborted { partial })) => {
            CoreStats::inc(&core.stats().preamble_aborted);
            debug!(partial, "peer closed before its preamble was complete");
            // A connect-and-close with no byte (a health check) is not held against the source.
            if partial {
                core.record_bad(peer.ip());
            }
            return;
        }
        Ok(Err(Failed::Refused)) => {
            core.record_bad(peer.ip());
            return;
        }
        // Over an SNI budget: a well-formed hello, counted by budget, not held against the source.
        Ok(Err(Failed::OverBudget)) => return,
        Err(_) => {
            CoreStats::inc(&core.stats().preamble_timeouts);
            debug!("preamble deadline passed");
            core.record_bad(peer.ip());
            return;
        }
    };
    let owner = core.shared.map.owner(&token);
    if owner == core.id {
        core.process_pending();
        core.arrive(
            token,
            port,
            Conn {
                stream,
                peer,
                prefix,
                _guard: guard,
                sni,
            },
        );
        return;
    }
    drop((guard, sni));
    // monoio deregisters the fd from this core's driver and gives up ownership.
    let fd = stream.into_raw_fd();
    // SAFETY: `fd` is an open socket that nothing else owns after `into_raw_fd`.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let msg = CoreMsg::Arrive(Handoff {
        stream,
        peer,
        token,
        port,
        prefix,
    });
    match core.shared.cores[owner.0].mailbox.try_send(msg) {
        Ok(()) => CoreStats::inc(&core.stats().handoffs_out),
        Err(SendError::Full(_) | SendError::Closed(_)) => {
            CoreStats::inc(&core.stats().handoffs_dropped);
            debug!(
                owner = owner.0,
                "owner mailbox full or closed; connection closed"
            );
        }
    }
}

/// A connection's preamble, read whole.
pub(crate) struct Preamble {
    /// The token of the pair side it joins.
    token: Token,
    /// Bytes read beyond the token, replayed to the other side first (a ClientHello).
    prefix: Vec<u8>,
    /// A routed ClientHello's claim on the SNI budget.
    sni: Option<SniSlot>,
}

/// How reading a preamble ended without a token (a deadline is the caller's `timeout`).
pub(crate) enum Failed {
    /// The peer closed or reset first; `partial` when it had sent at least one byte.
    Aborted { partial: bool },
    /// The ClientHello was refused (malformed, too large, no route); already counted.
    Refused,
    /// The ClientHello's source or domain holds its SNI budget; already counted.
    OverBudget,
}

/// Reads exactly 32 bytes (in any split, never more).
pub(crate) async fn read_token(stream: &TcpStream) -> Result<Preamble, Failed> {
    let mut reader = TokenReader::new();
    // Bounded: each round reads >= 1 byte or waits; at most 32 reads succeed.
    loop {
        if let Some(token) = reader.token() {
            return Ok(Preamble {
                token,
                prefix: Vec::new(),
                sni: None,
            });
        }
        let aborted = Failed::Aborted {
            partial: reader.filled() > 0,
        };
        match splice::recv(stream.as_raw_fd(), reader.unfilled()) {
            Ok(Step::Moved(n)) => reader.advance(n),
            Ok(Step::WouldBlock) => stream.readable(false).await.map_err(|_| aborted)?,
            Ok(Step::Eof) | Err(_) => return Err(aborted),
        }
    }
}

/// Buffers the ClientHello (bounded by `hello_max_bytes`), takes an SNI budget slot, asks the
/// resolver for the token to join, and returns it with the buffered bytes to replay.
pub(crate) async fn read_hello(
    core: &Core,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Result<Preamble, Failed> {
    let max = core.shared.config.hello_max_bytes;
    let mut parser = ClientHelloReader::new(max);
    // Bytes are received straight into `buf` (grown by at most HELLO_CHUNK per read), so no
    // fixed-size chunk lives in this future across the readiness await.
    let mut buf: Vec<u8> = Vec::new();
    let info = loop {
        let room = (max - buf.len()).min(HELLO_CHUNK);
        if room == 0 {
            CoreStats::inc(&core.stats().bad_hellos);
            return Err(Failed::Refused);
        }
        let aborted = Failed::Aborted {
            partial: !buf.is_empty(),
        };
        let filled = buf.len();
        buf.resize(filled + room, 0);
        let step = splice::recv(stream.as_raw_fd(), &mut buf[filled..]);
        let got = match &step {
            Ok(Step::Moved(n)) => *n,
            _ => 0,
        };
        buf.truncate(filled + got);
        match step {
            Ok(Step::Moved(_)) => match parser.feed(&buf[filled..]) {
                Ok(Some(info)) => break info,
                Ok(None) => {}
                Err(e) => {
                    CoreStats::inc(&core.stats().bad_hellos);
                    debug!(error = e.kind(), "bad ClientHello");
                    return Err(Failed::Refused);
                }
            },
            Ok(Step::WouldBlock) => stream.readable(false).await.map_err(|_| aborted)?,
            Ok(Step::Eof) | Err(_) => return Err(aborted),
        }
    };
    // Before the resolver: a refused hello creates no pair and no notification.
    let slot = match core.sni_slot(peer.ip(), info.sni.as_deref().unwrap_or("")) {
        Ok(slot) => slot,
        Err(budget) => {
            debug!(sni = ?info.sni, budget = budget.as_str(), "SNI budget spent; hello refused");
            return Err(Failed::OverBudget);
        }
    };
    match core.shared.resolver.resolve(&info, peer) {
        Some(token) => {
            // Kept until the pair closes: give back the unused room of the last read.
            buf.shrink_to_fit();
            Ok(Preamble {
                token,
                prefix: buf,
                sni: Some(slot),
            })
        }
        None => {
            CoreStats::inc(&core.stats().bad_hellos);
            debug!(sni = ?info.sni, "no route for SNI");
            Err(Failed::Refused)
        }
    }
}

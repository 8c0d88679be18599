//! Accepting on a data port and reading the preamble: the 32-byte token (pairing port) or the
//! ClientHello (TLS port), each under its deadline; then local pairing or a handoff to the owner.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;

use monoio::io::AsyncReadRent;
use monoio::net::{TcpListener, TcpStream};
use tracing::field::Empty;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::admission::SniSlot;
use crate::clienthello::ClientHelloReader;
use crate::core::{Conn, Core};
use crate::core_msg::Handoff;
use crate::mailbox::SendError;
use crate::pair_table::Port;
use crate::preamble::TokenReader;
use crate::proxied;
use crate::relay::splice::{self, Step};
use crate::shared::ConnGuard;
use crate::stats::CoreStats;
use crate::token::Token;

/// Bytes read per recv while buffering a ClientHello.
const HELLO_CHUNK: usize = 4096;

/// Connections accepted per readiness before the loop waits again (and so lets the core's
/// other tasks run): a burst of dials is taken in batches of this many.
const ACCEPTS_PER_WAKEUP: usize = 64;

/// Accepts until drain; accept errors (EMFILE, ENFILE, ...) back off and never end the loop.
///
/// One readiness wait, then `accept4` until the backlog is empty (at most
/// [`ACCEPTS_PER_WAKEUP`]): the effect of a multishot accept, which monoio 0.2 cannot submit
/// (its driver completes each operation once). The accepted socket comes non-blocking and
/// close-on-exec from `accept4`, and inherits TCP_NODELAY and keepalive from the listener, so
/// accepting costs one syscall per connection and nothing more before its token is read.
pub(crate) async fn accept_loop(core: Rc<Core>, listener: TcpListener, port: Port) {
    let cfg = &core.config();
    let fd = listener.as_raw_fd();
    // A binary upgrade's pause ends the loop without `stop_listening`: the socket (kept open
    // by the engine's copy) goes on to the next process with its backlog.
    let pause = core.pause_signal();
    'wait: loop {
        let ready = monoio::select! {
            r = listener.readable(false) => r,
            _ = core.stop_accept().wait() => break,
            _ = pause.wait() => return,
        };
        let mut failed = ready.err();
        if failed.is_none() {
            for _ in 0..ACCEPTS_PER_WAKEUP {
                match splice::accept_nonblocking(fd) {
                    // An IPv4 client of a dual-stack listener is its IPv4 address everywhere.
                    Ok(Some((stream, peer))) => {
                        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                        accepted(&core, stream, peer, port)
                    }
                    Ok(None) => continue 'wait,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            CoreStats::inc(&core.stats().accept_errors);
            warn!(core = core.id().0, error = %e, "accept failed; backing off");
            monoio::select! {
                _ = monoio::time::sleep(cfg.accept_backoff) => {},
                _ = core.stop_accept().wait() => break,
            }
        }
    }
    // Synchronously: with io_uring the fd's close is an op the ring runs later.
    splice::stop_listening(fd);
    drop(listener);
    if core.listener_closed() {
        info!("every data port is closed: no new connections, live pairs drain");
    }
}

/// One accepted connection: admission, then its task.
fn accepted(core: &Rc<Core>, stream: std::net::TcpStream, peer: SocketAddr, port: Port) {
    CoreStats::inc(&core.stats().accepted);
    // A trusted balancer's connection is checked per source once its PROXY header names the client.
    let proxied = proxied::trusted(core, peer);
    if let Err(reason) = core.admit(port, (!proxied).then(|| peer.ip())) {
        debug!(core = core.id().0, %peer, reason = reason.as_str(), "refused at accept");
        return;
    }
    let stream = match TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            CoreStats::inc(&core.stats().accept_errors);
            warn!(core = core.id().0, error = %e, "cannot adopt accepted socket");
            return;
        }
    };
    let guard = core.conn_guard();
    // `peer` is the client: a proxied connection records it once its header is read.
    let span = match proxied {
        false => info_span!("conn", core = core.id().0, %peer, port = ?port, via = Empty),
        true => info_span!("conn", core = core.id().0, peer = Empty, port = ?port, via = %peer),
    };
    core.spawn(conn_task(core.clone(), stream, peer, port, guard).instrument(span));
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
    let close = core.close_all().clone();
    monoio::select! {
        _ = serve(core, stream, peer, port, guard) => {},
        _ = close.wait() => {},
    }
}

pub(crate) async fn serve(
    core: Rc<Core>,
    mut stream: TcpStream,
    peer: SocketAddr,
    port: Port,
    guard: ConnGuard,
) {
    let cfg = &core.config();
    let proxied = proxied::trusted(&core, peer);
    let (peer, read_ahead) = match proxied {
        false => (peer, Vec::new()),
        true => match proxied::client(&core, &stream, peer, port).await {
            Some(client) => client,
            None => return,
        },
    };
    let read = match port {
        Port::Pairing => {
            let token = read_token(&mut stream, read_ahead);
            monoio::time::timeout(cfg.token_deadline, token).await
        }
        Port::Tls => {
            let hello = read_hello(&core, &stream, peer, read_ahead);
            monoio::time::timeout(cfg.hello_deadline, hello).await
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
    if !proxied && tandem_proxy_header::looks_like_header(&token.as_bytes()[..12]) {
        // A PROXY header from a source not trusted to send one (a random token starts so with
        // probability 2^-48).
        CoreStats::inc(&core.stats().proxy_untrusted);
        debug!("PROXY header from an untrusted source");
        core.record_bad(peer.ip());
        return;
    }
    let owner = core.owner_of(&token);
    if owner == core.id() {
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
    let h = Handoff {
        stream,
        peer,
        token,
        port,
        prefix,
    };
    match core.hand_off(owner, h) {
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

/// Reads exactly 32 bytes (in any split, never more from the socket), starting with
/// `read_ahead` (bytes read with a PROXY header; any beyond the token become the prefix).
///
/// First a non-blocking `recv` (the token usually arrived with or right after the handshake);
/// when nothing is there yet, the rest is read by one receive operation of the driver: on
/// io_uring a Recv op on the socket, which completes with the bytes (no readiness wait, then
/// a second syscall); on epoll the same readiness wait and read as before.
pub(crate) async fn read_token(
    stream: &mut TcpStream,
    mut read_ahead: Vec<u8>,
) -> Result<Preamble, Failed> {
    let mut reader = TokenReader::new();
    let took = reader.feed(&read_ahead);
    read_ahead.drain(..took);
    // Bounded: each round reads >= 1 byte or fails; at most 32 reads succeed.
    loop {
        if let Some(token) = reader.token() {
            return Ok(Preamble {
                token,
                prefix: read_ahead,
                sni: None,
            });
        }
        let aborted = Failed::Aborted {
            partial: reader.filled() > 0,
        };
        match splice::recv(stream.as_raw_fd(), reader.unfilled()) {
            Ok(Step::Moved(n)) => reader.advance(n),
            Ok(Step::WouldBlock) => {
                // Exactly the missing bytes: the read never takes a byte beyond the token.
                let want = reader.unfilled().len();
                let (r, buf) = stream.read(vec![0u8; want].into_boxed_slice()).await;
                match r {
                    Ok(n) if n > 0 => {
                        let n = n.min(want);
                        reader.unfilled()[..n].copy_from_slice(&buf[..n]);
                        reader.advance(n);
                    }
                    Ok(_) => return Err(aborted),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(aborted),
                }
            }
            Ok(Step::Eof) | Err(_) => return Err(aborted),
        }
    }
}

/// Buffers the ClientHello (bounded by `hello_max_bytes`), takes an SNI budget slot, asks the
/// resolver for the token to join, and returns it with the buffered bytes to replay. Starts
/// with `read_ahead` (bytes read with a PROXY header).
pub(crate) async fn read_hello(
    core: &Core,
    stream: &TcpStream,
    peer: SocketAddr,
    read_ahead: Vec<u8>,
) -> Result<Preamble, Failed> {
    let max = core.config().hello_max_bytes;
    let mut parser = ClientHelloReader::new(max);
    // Bytes are received straight into `buf` (grown by at most HELLO_CHUNK per read), so no
    // fixed-size chunk lives in this future across the readiness await.
    let mut buf: Vec<u8> = read_ahead;
    // Bytes of `buf` the parser has seen.
    let mut parsed = 0;
    let info = loop {
        if parsed < buf.len() {
            let fed = parser.feed(&buf[parsed..]);
            parsed = buf.len();
            match fed {
                Ok(Some(info)) => break info,
                Ok(None) => {}
                Err(e) => {
                    CoreStats::inc(&core.stats().bad_hellos);
                    if tandem_proxy_header::looks_like_header(&buf) {
                        CoreStats::inc(&core.stats().proxy_untrusted);
                    }
                    debug!(error = e.kind(), "bad ClientHello");
                    return Err(Failed::Refused);
                }
            }
        }
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
            Ok(Step::Moved(_)) => {}
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
    match core.resolve(&info, peer) {
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

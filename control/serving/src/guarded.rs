//! A connection's I/O under the kit's watch: reads and writes fail once the connection's phase
//! deadline passes or the admission table evicts it, so whatever serves it (hyper, tonic, rustls)
//! drops it and its slot. Wraps the TCP stream, below TLS, so the handshake is covered too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use super::conn::{CutReason, Phase, Slot};
use tandem_types::serving_config::Deadlines;

/// The guarded I/O.
#[derive(Debug)]
pub struct Guarded<S> {
    io: S,
    slot: Slot,
    deadlines: Deadlines,
    sleep: Pin<Box<Sleep>>,
    /// Created at construction, so an eviction before the first poll still wakes it.
    evicted: Pin<Box<OwnedNotified>>,
    /// The connection's first bytes, until there are enough to tell a PROXY header.
    head: Head,
    /// The last write or flush did not get everything out (a response is still leaving): never
    /// closed as an idle keep-alive then.
    write_blocked: bool,
}

/// The first [`HEAD_BYTES`] bytes a connection sent (the v2 signature's length): a connection
/// that starts with a PROXY header here was not trusted to send one (a trusted balancer's header
/// is taken off before admission), so it is refused and counted (`proxy_untrusted`). Neither
/// TLS (first byte 0x16) nor HTTP (`PROXY ` is no method; no request starts with the v2
/// signature) begins so.
#[derive(Debug, Default)]
struct Head {
    bytes: [u8; HEAD_BYTES],
    len: usize,
}

const HEAD_BYTES: usize = tandem_proxy_header::V2_SIGNATURE.len();

impl Head {
    /// Records `new` bytes; true when the stream so far is a whole PROXY signature.
    fn is_header(&mut self, new: &[u8]) -> bool {
        let take = new.len().min(HEAD_BYTES - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&new[..take]);
        self.len += take;
        let seen = &self.bytes[..self.len];
        let whole = |sig: &[u8]| seen.len() >= sig.len() && seen.starts_with(sig);
        whole(tandem_proxy_header::V1_PREFIX) || whole(&tandem_proxy_header::V2_SIGNATURE)
    }
}

impl<S> Guarded<S> {
    pub(crate) fn new(io: S, slot: Slot, deadlines: Deadlines) -> Self {
        let evicted = Box::pin(slot.state().notify.clone().notified_owned());
        let first = slot
            .state()
            .deadline(&deadlines)
            .map_or_else(Instant::now, |(at, _)| Instant::from_std(at));
        Self {
            io,
            slot,
            deadlines,
            sleep: Box::pin(tokio::time::sleep_until(first)),
            evicted,
            head: Head::default(),
            write_blocked: false,
        }
    }

    /// The connection's slot.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The wrapped I/O.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// `Err` once the connection is cut; otherwise registers for the next deadline or eviction.
    fn watch(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let state = self.slot.state();
        if let Some(reason) = state.cut_reason() {
            return Err(cut_error(reason));
        }
        match state.phase() {
            // Proven connections are never evicted, and an established one has no deadline: the
            // hot path of an operator's gRPC traffic pays two atomic loads here, nothing more.
            Phase::Established => return Ok(()),
            Phase::Active => {}
            Phase::Handshake | Phase::AwaitingRequest => {
                if self.evicted.as_mut().poll(cx).is_ready()
                    && let Some(reason) = state.cut_reason()
                {
                    return Err(cut_error(reason));
                }
            }
        }
        loop {
            let Some((at, reason)) = state.deadline(&self.deadlines) else {
                return Ok(());
            };
            let at = Instant::from_std(at);
            if self.sleep.deadline() != at {
                self.sleep.as_mut().reset(at);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            // The sleep fired: cut unless the deadline moved on meanwhile.
            if state
                .deadline(&self.deadlines)
                .map(|(a, _)| Instant::from_std(a))
                == Some(at)
            {
                if state.cut(reason) {
                    debug!(reason = reason.as_str(), "connection cut");
                    self.slot.count_cut(reason);
                }
                return Err(cut_error(reason));
            }
        }
    }
}

fn cut_error(reason: CutReason) -> io::Error {
    let kind = match reason {
        CutReason::EvictedFull | CutReason::EvictedSourceFull | CutReason::Draining => {
            io::ErrorKind::ConnectionAborted
        }
        _ => io::ErrorKind::TimedOut,
    };
    io::Error::new(kind, format!("connection cut: {}", reason.as_str()))
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.watch(cx)?;
        let before = buf.filled().len();
        let state = this.slot.state();
        // A stopping server closes an idle HTTP/1 keep-alive at once, but only when nothing of a
        // next request is waiting: a request already sent is read and served.
        let idle_at_stop =
            !this.write_blocked && state.is_idle_keep_alive() && this.slot.is_draining();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            state.arrived();
        } else if idle_at_stop && read.is_pending() {
            if state.cut(CutReason::Draining) {
                debug!("idle keep-alive closed: the server is stopping");
                this.slot.count_cut(CutReason::Draining);
            }
            return Poll::Ready(Err(cut_error(CutReason::Draining)));
        }
        if this.head.len < HEAD_BYTES
            && matches!(read, Poll::Ready(Ok(())))
            && this.head.is_header(new)
        {
            debug!("PROXY header from a source not trusted to send one; closed");
            this.slot.count_untrusted_header();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "PROXY header from an untrusted source",
            )));
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx)?;
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.write_blocked = !matches!(written, Poll::Ready(Ok(n)) if n == buf.len());
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.watch(cx)?;
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.write_blocked = !matches!(flushed, Poll::Ready(Ok(())));
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx)?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.write_blocked = !matches!(written, Poll::Ready(Ok(n)) if n == total);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

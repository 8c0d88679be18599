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
        CutReason::EvictedFull | CutReason::EvictedSourceFull => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::TimedOut,
    };
    io::Error::new(kind, format!("connection cut: {}", reason.as_str()))
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.watch(cx)?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.watch(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
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
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

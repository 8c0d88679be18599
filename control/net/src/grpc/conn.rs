//! A TLS-accepted connection handed to a tonic server, carrying what the accept loop learned about
//! the peer (an operator identity, an admin check) as tonic's connect info. The TCP stream under
//! the TLS is the serving kit's [`Guarded`] I/O, which holds the connection's slot until it closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use tandem_serving::Guarded;

/// A server-side TLS connection with peer information `I`.
pub struct TlsConn<I> {
    tls: TlsStream<Guarded<TcpStream>>,
    info: I,
}

impl<I> TlsConn<I> {
    /// Wraps an accepted connection; its slot is released when the connection is dropped.
    pub fn new(tls: TlsStream<Guarded<TcpStream>>, info: I) -> Self {
        Self { tls, info }
    }
}

impl<I: Clone + Send + Sync + 'static> Connected for TlsConn<I> {
    type ConnectInfo = I;

    fn connect_info(&self) -> I {
        self.info.clone()
    }
}

impl<I: Unpin> AsyncRead for TlsConn<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl<I: Unpin> AsyncWrite for TlsConn<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}

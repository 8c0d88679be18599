//! The private side's data path after `tandem_net::pairing::join_pair` (dial the public proxy's
//! pairing port, write the raw token): ForwardTLS (pipe raw bytes to the internal address) —
//! TerminateTLS is in [`super::terminate`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use tandem_settings::listeners::HostPort;

/// Why a private-side connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Dialling did not finish within the deadline.
    #[error("dialling {0} timed out")]
    DialTimeout(String),
    /// No byte moved either way for the idle timeout; the connection was closed.
    #[error("no traffic for {0:?}")]
    Idle(Duration),
    /// Dialling, writing the token or relaying failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ForwardError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DialTimeout(_) => "dial_timeout",
            Self::Idle(_) => "idle",
            Self::Io { .. } => "io",
        }
    }
}

/// Dials `address` (`host:port`) within `deadline`.
pub async fn dial(address: &str, deadline: Duration) -> Result<TcpStream, ForwardError> {
    let stream = tokio::time::timeout(deadline, TcpStream::connect(address))
        .await
        .map_err(|_| ForwardError::DialTimeout(address.to_owned()))?
        .map_err(|source| ForwardError::Io {
            context: format!("dialling {address}"),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// ForwardTLS: pipes the paired socket to the internal address until both directions end
/// (half-closes are propagated, unlike the original's close-both on the first EOF), or until no
/// byte moved either way for `idle` (then both sockets close: a silent client must not hold the
/// connection slot until the public engine's own, longer, idle timeout). With `header` (a PROXY
/// v2 header, see [`proxy_v2_header`]), the internal connection starts with it.
pub async fn forward(
    mut paired: TcpStream,
    internal: &HostPort,
    header: Option<Vec<u8>>,
    deadline: Duration,
    idle: Duration,
) -> Result<(u64, u64), ForwardError> {
    let mut inner = dial(&internal.to_string(), deadline).await?;
    if let Some(header) = header {
        let write = tokio::io::AsyncWriteExt::write_all(&mut inner, &header);
        tokio::time::timeout(deadline, write)
            .await
            .map_err(|_| ForwardError::DialTimeout(internal.to_string()))?
            .map_err(|source| ForwardError::Io {
                context: "writing the PROXY header".into(),
                source,
            })?;
    }
    let activity = Activity::new();
    let mut a = Watched {
        io: &mut paired,
        activity: &activity,
    };
    let mut b = Watched {
        io: &mut inner,
        activity: &activity,
    };
    let moved = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut a, &mut b) => r.map_err(|source| ForwardError::Io {
            context: "relaying".into(),
            source,
        })?,
        () = activity.idle_for(idle) => return Err(ForwardError::Idle(idle)),
    };
    debug!(
        to_internal = moved.0,
        from_internal = moved.1,
        "forwarded connection closed"
    );
    Ok(moved)
}

/// The PROXY v2 header for a forwarded connection of `client` (as the public proxy saw it),
/// reached through the public proxy at `public` (our paired socket's peer: the client's TLS
/// connection ended at that host). Without a client address (a public proxy that does not send
/// one, like the original), a LOCAL header: the backend keeps the connection's own addresses.
pub fn proxy_v2_header(client: Option<SocketAddr>, public: Option<SocketAddr>) -> Vec<u8> {
    match (client, public) {
        (Some(client), Some(public)) => tandem_proxy_header::encode_v2(client, public),
        _ => tandem_proxy_header::encode_v2_local().to_vec(),
    }
}

/// When bytes last moved, shared by both directions of one forwarded connection.
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last read that returned bytes.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte moved for `idle`. Sleeps again only when bytes moved meanwhile,
    /// so one timer per connection, re-armed at most once per `idle` of traffic.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

/// A stream whose reads mark the connection active.
struct Watched<'a, S> {
    io: &'a mut S,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

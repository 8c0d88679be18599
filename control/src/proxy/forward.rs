//! The private side's data path: dial the public proxy's pairing port, write the raw token,
//! then ForwardTLS (pipe raw bytes to the internal address) — TerminateTLS is in
//! [`super::terminate`].

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use crate::settings::listeners::HostPort;

/// Why a private-side connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Dialling did not finish within the deadline.
    #[error("dialling {0} timed out")]
    DialTimeout(String),
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

/// Dials the public proxy's pairing `endpoint` and writes the 32-byte token (SPEC §4.6).
pub async fn join_pair(
    endpoint: &str,
    token: &[u8; 32],
    deadline: Duration,
) -> Result<TcpStream, ForwardError> {
    let mut stream = dial(endpoint, deadline).await?;
    tokio::time::timeout(deadline, stream.write_all(token))
        .await
        .map_err(|_| ForwardError::DialTimeout(endpoint.to_owned()))?
        .map_err(|source| ForwardError::Io {
            context: "writing the token".into(),
            source,
        })?;
    Ok(stream)
}

/// ForwardTLS: pipes the paired socket to the internal address until both directions end
/// (half-closes are propagated, unlike the original's close-both on the first EOF).
pub async fn forward(
    mut paired: TcpStream,
    internal: &HostPort,
    deadline: Duration,
) -> Result<(u64, u64), ForwardError> {
    let mut inner = dial(&internal.to_string(), deadline).await?;
    let moved = tokio::io::copy_bidirectional(&mut paired, &mut inner)
        .await
        .map_err(|source| ForwardError::Io {
            context: "relaying".into(),
            source,
        })?;
    debug!(
        to_internal = moved.0,
        from_internal = moved.1,
        "forwarded connection closed"
    );
    Ok(moved)
}

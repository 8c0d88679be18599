//! Joining a pair (SPEC §4.6): dial a proxy's pairing endpoint and write the 32 raw token bytes
//! first. The one implementation both presenting sides use: the Hyper node's brokered gRPC
//! connections (requester and target) and the private proxy's `incomingConnection`.
//!
//! **Deadline rule**: one deadline covers the whole join, from the start of the connect to the
//! last token byte flushed. A peer that accepts and then does not read cannot stretch it.

use std::time::Duration;

use tandem_types::Token;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Why joining a pair failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Connecting to the pairing endpoint failed.
    #[error("dialing {endpoint}: {source}")]
    Dial {
        /// The endpoint.
        endpoint: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the token failed.
    #[error("could not write token to {endpoint}: {source}")]
    WriteToken {
        /// The endpoint.
        endpoint: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connecting and writing the token took longer than the deadline.
    #[error("dialing {endpoint} took longer than {seconds:.1}s")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The deadline in seconds.
        seconds: f64,
    },
}

impl JoinError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dial { .. } => "dial",
            Self::WriteToken { .. } => "write_token",
            Self::Timeout { .. } => "timeout",
        }
    }
}

/// Connects to `endpoint` (`HOST:PORT`), sets TCP_NODELAY and writes the token's 32 raw bytes, all
/// within `deadline` (see the module docs). The returned socket carries the paired bytes from then
/// on.
pub async fn join_pair(
    endpoint: &str,
    token: &Token,
    deadline: Duration,
) -> Result<TcpStream, JoinError> {
    let attempt = async {
        let mut stream = TcpStream::connect(endpoint)
            .await
            .map_err(|source| JoinError::Dial {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        // Small frames (gRPC, TLS records) must not wait for Nagle behind the splice.
        let _ = stream.set_nodelay(true);
        let write = |source| JoinError::WriteToken {
            endpoint: endpoint.to_owned(),
            source,
        };
        stream.write_all(token.as_bytes()).await.map_err(write)?;
        stream.flush().await.map_err(write)?;
        Ok(stream)
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(JoinError::Timeout {
            endpoint: endpoint.to_owned(),
            seconds: deadline.as_secs_f64(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn the_raw_token_comes_first_then_the_callers_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let token = Token::from_bytes([0xab; 32]);
        let (dialed, accepted) = tokio::join!(
            join_pair(&addr, &token, Duration::from_secs(30)),
            listener.accept()
        );
        let mut dialed = dialed.unwrap();
        let (mut accepted, _) = accepted.unwrap();
        let mut got = [0u8; 32];
        accepted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, token.as_bytes());
        dialed.write_all(b"after").await.unwrap();
        let mut rest = [0u8; 5];
        accepted.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"after");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_dial_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let token = Token::from_bytes([1; 32]);
        let err = join_pair(&addr, &token, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "dial", "{err}");
        assert!(err.to_string().starts_with(&format!("dialing {addr}")));
    }

    #[tokio::test]
    async fn a_join_to_a_blackholed_endpoint_fails_at_the_deadline() {
        // A listener with a full accept queue: further connects hang (SYN dropped).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..4 {
            if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                queued.push(s);
            }
        }
        let probe =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
        assert!(probe.is_err(), "precondition: the accept queue is full");
        let err = join_pair(
            &addr.to_string(),
            &Token::from_bytes([1; 32]),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), "timeout", "{err}");
        assert!(!err.to_string().contains("0101"), "no token bytes: {err}");
        drop((listener, queued));
    }
}

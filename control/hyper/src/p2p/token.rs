//! The pairing token as both sides see it (SPEC §4.6): 32 random bytes, carried as standard base64
//! in JSON-RPC and written raw as the first bytes on the pairing endpoint.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::P2pError;

/// Bytes in a token (the proxy's `requestConnection` issues 32 random bytes).
pub const TOKEN_BYTES: usize = 32;
/// Longest base64 text we decode, in characters: 32 bytes are 44 padded characters; anything
/// longer is refused before decoding, so a peer cannot make us decode megabytes.
pub const MAX_TOKEN_CHARS: usize = 64;
/// Longest `endpoint` (`HOST:PORT`) we dial, in bytes: a 253-byte DNS name, `:` and a port, with room.
pub const MAX_ENDPOINT_BYTES: usize = 300;

/// A pairing token. Its bytes are a bearer secret: `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectToken([u8; TOKEN_BYTES]);

impl std::fmt::Debug for ConnectToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectToken(..)")
    }
}

impl ConnectToken {
    /// The token of 32 raw bytes.
    pub fn from_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// Decodes standard (padded) base64 that must hold exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, P2pError> {
        if text.len() > MAX_TOKEN_CHARS {
            return Err(P2pError::invalid(
                "token",
                format!("longer than {MAX_TOKEN_CHARS} characters"),
            ));
        }
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| P2pError::invalid("token", "not standard base64"))?;
        let bytes: [u8; TOKEN_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            P2pError::invalid(
                "token",
                format!("{} bytes, expected {TOKEN_BYTES}", b.len()),
            )
        })?;
        Ok(Self(bytes))
    }

    /// The standard base64 form (what travels in JSON-RPC).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw bytes (what is written to the pairing endpoint).
    pub fn as_bytes(&self) -> &[u8; TOKEN_BYTES] {
        &self.0
    }
}

/// Checks an `endpoint` value (non-empty, bounded, `HOST:PORT`-shaped).
pub(crate) fn endpoint(text: &str) -> Result<&str, P2pError> {
    if text.is_empty() || text.len() > MAX_ENDPOINT_BYTES {
        return Err(P2pError::invalid(
            "endpoint",
            format!("must be HOST:PORT of 1 to {MAX_ENDPOINT_BYTES} bytes"),
        ));
    }
    let port = text.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
    if !matches!(port, Some(Ok(_))) {
        return Err(P2pError::invalid("endpoint", "must be HOST:PORT"));
    }
    Ok(text)
}

/// Connects to `endpoint`, sets TCP_NODELAY and writes the 32 raw token bytes, all within
/// `deadline`. The returned socket carries the peer-to-peer bytes from then on.
pub async fn dial_with_token(
    endpoint: &str,
    token: &ConnectToken,
    deadline: Duration,
) -> Result<TcpStream, P2pError> {
    let attempt = async {
        let mut stream = TcpStream::connect(endpoint)
            .await
            .map_err(|source| P2pError::Dial {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        // Small gRPC frames must not wait for Nagle behind the splice.
        let _ = stream.set_nodelay(true);
        let write = |source| P2pError::WriteToken {
            endpoint: endpoint.to_owned(),
            source,
        };
        stream.write_all(token.as_bytes()).await.map_err(write)?;
        stream.flush().await.map_err(write)?;
        Ok(stream)
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(P2pError::Timeout {
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

    #[test]
    fn tokens_decode_from_standard_base64_of_exactly_32_bytes() {
        let token = ConnectToken::from_bytes([7; 32]);
        let text = token.to_base64();
        assert_eq!(text.len(), 44);
        assert_eq!(ConnectToken::from_base64(&text).unwrap(), token);
        for bad in [
            STANDARD.encode([1u8; 31]),
            STANDARD.encode([1u8; 33]),
            "not base64!".to_owned(),
            "A".repeat(MAX_TOKEN_CHARS + 4),
            String::new(),
        ] {
            let err = ConnectToken::from_base64(&bad).unwrap_err();
            assert_eq!(err.kind(), "invalid", "{bad}");
        }
        assert_eq!(format!("{token:?}"), "ConnectToken(..)");
    }

    #[test]
    fn endpoints_must_be_host_port() {
        assert_eq!(endpoint("localhost:9999").unwrap(), "localhost:9999");
        assert_eq!(endpoint("[::1]:1").unwrap(), "[::1]:1");
        for bad in ["", "localhost", "h:port", "h:70000"] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        assert!(endpoint(&format!("{}:1", "a".repeat(MAX_ENDPOINT_BYTES))).is_err());
    }

    #[tokio::test]
    async fn dialing_writes_the_raw_token_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let token = ConnectToken::from_bytes([0xab; 32]);
        let (dialed, accepted) = tokio::join!(
            dial_with_token(&addr, &token, Duration::from_secs(5)),
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
        let token = ConnectToken::from_bytes([1; 32]);
        let err = dial_with_token(&addr, &token, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "dial", "{err}");
        assert!(err.to_string().starts_with(&format!("dialing {addr}")));
    }
}

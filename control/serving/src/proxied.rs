//! The PROXY protocol on the kit's listeners: a connection from a trusted balancer (the
//! listener's `proxy_protocol` networks) starts with a header naming its client; it is read here
//! before admission (sans-IO `tandem_proxy_header`, under the header deadline, bounded in bytes),
//! and the client's address is what admission, the filter, the servers and the logs see.
//!
//! The header is read with `MSG_PEEK` and only its own bytes are then taken from the socket, so
//! the TLS handshake or request after it stays in the socket for the server.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_proxy_header::{DEFAULT_MAX_HEADER_BYTES, HeaderError, HeaderReader, ProxyHeader};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tracing::debug;

use super::admission::Admission;

/// Connections of one listener whose header is being read at once. Each holds a socket and a
/// small buffer for at most the header deadline, before any slot; past this, a new connection
/// from a trusted balancer is closed and counted (`proxy_pending_full`). 1,024 matches the
/// default `max_connections`: a balancer never has more in flight than the listener holds.
pub const MAX_PENDING_HEADERS: usize = 1024;

/// Bytes peeked per read (a v2 header from HAProxy is 28 or 52 bytes plus TLVs; the reader's
/// `want()` bounds each read further).
const PEEK_CHUNK: usize = 256;

/// Reads the header of a connection from the trusted `balancer`; the stream (positioned after
/// the header) and the client's address, or `None` when the connection is to be closed (counted
/// on `admission`'s listener as `proxy_bad_header`, `proxy_header_timeout` or
/// `proxy_header_aborted`).
pub(crate) async fn client(
    mut stream: TcpStream,
    balancer: SocketAddr,
    deadline: Duration,
    admission: Admission,
) -> Option<(TcpStream, SocketAddr)> {
    let name = admission.name();
    let count = |event| admission.metrics().count(name, event);
    match tokio::time::timeout(deadline, read(&mut stream)).await {
        Ok(Ok(header)) => {
            count("proxy_header");
            let client = header.source().unwrap_or(balancer);
            debug!(listener = name, %balancer, %client, kind = header.kind(), "PROXY header");
            Some((stream, client))
        }
        Ok(Err(Some(e))) => {
            count("proxy_bad_header");
            debug!(listener = name, %balancer, error = e.kind(), "bad PROXY header from a trusted source");
            None
        }
        Ok(Err(None)) => {
            count("proxy_header_aborted");
            debug!(listener = name, %balancer, "trusted source closed before its PROXY header");
            None
        }
        Err(_) => {
            count("proxy_header_timeout");
            debug!(listener = name, %balancer, "PROXY header deadline passed");
            None
        }
    }
}

/// Peeks the header, then takes exactly its bytes: `Err(None)` when the peer closed or failed.
async fn read(stream: &mut TcpStream) -> Result<ProxyHeader, Option<HeaderError>> {
    let mut reader = HeaderReader::new(DEFAULT_MAX_HEADER_BYTES);
    let mut buf = [0u8; PEEK_CHUNK];
    // Bounded: each round takes >= 1 byte from the socket or fails, within the reader's bound.
    loop {
        let want = reader.want().clamp(1, PEEK_CHUNK);
        let n = stream.peek(&mut buf[..want]).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        let feed = reader.feed(&buf[..n]).map_err(Some)?;
        // Peeked bytes are in the socket: this read takes them without waiting.
        stream
            .read_exact(&mut buf[..feed.consumed])
            .await
            .map_err(|_| None)?;
        if let Some(header) = feed.header {
            return Ok(header);
        }
    }
}

#[cfg(test)]
#[path = "proxied_tests.rs"]
mod tests;

//! The PROXY protocol on the data ports: a connection from a trusted load balancer starts with a
//! header naming its client; it is read here (sans-IO `tandem_proxy_header` under the configured
//! deadline and byte bound) before the token or ClientHello, and the client's address replaces
//! the balancer's for the per-source limits, the SNI resolver and the logs.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use monoio::net::TcpStream;
use tandem_proxy_header::{DEFAULT_MAX_HEADER_BYTES, HeaderError, HeaderReader, ProxyHeader};
use tracing::debug;

use crate::core::Core;
use crate::pair_table::Port;
use crate::relay::splice::{self, Step};
use crate::stats::CoreStats;

/// Bytes received per read while the header is incomplete (a v2 header from HAProxy is 28 or 52
/// bytes plus TLVs; the reader's `want()` bounds each read further).
const HEADER_CHUNK: usize = 256;

/// Whether connections from `peer` must start with a PROXY header on this engine.
pub(crate) fn trusted(core: &Core, peer: SocketAddr) -> bool {
    core.config()
        .proxy_protocol
        .as_ref()
        .is_some_and(|p| p.trusts(peer.ip()))
}

/// A trusted connection's client, and the bytes read past its header (the start of its token or
/// ClientHello), once the client passed the per-source checks; `None` when the connection is
/// to be closed (every outcome counted and logged here).
pub(crate) async fn client(
    core: &Core,
    stream: &TcpStream,
    balancer: SocketAddr,
    port: Port,
) -> Option<(SocketAddr, Vec<u8>)> {
    let stats = core.stats();
    let deadline = core.config().proxy_protocol.as_ref()?.deadline;
    let (header, rest) = match monoio::time::timeout(deadline, read(stream)).await {
        Ok(Ok(read)) => read,
        Ok(Err(Some(e))) => {
            CoreStats::inc(&stats.proxy_bad_headers);
            debug!(error = e.kind(), "bad PROXY header from a trusted source");
            return None;
        }
        Ok(Err(None)) => {
            CoreStats::inc(&stats.preamble_aborted);
            debug!("trusted source closed before its PROXY header was complete");
            return None;
        }
        Err(_) => {
            CoreStats::inc(&stats.proxy_header_timeouts);
            debug!("PROXY header deadline passed");
            return None;
        }
    };
    CoreStats::inc(&stats.proxy_headers);
    let client = header.source().unwrap_or(balancer);
    let span = tracing::Span::current();
    span.record("peer", tracing::field::display(client));
    if let Err(reason) = core.admit_source(port, client.ip()) {
        debug!(
            reason = reason.as_str(),
            "client refused after its PROXY header"
        );
        return None;
    }
    Some((client, rest))
}

/// Reads one header: `Err(None)` when the peer closed or failed first.
async fn read(stream: &TcpStream) -> Result<(ProxyHeader, Vec<u8>), Option<HeaderError>> {
    let mut reader = HeaderReader::new(DEFAULT_MAX_HEADER_BYTES);
    let mut chunk = vec![0u8; HEADER_CHUNK];
    // Bounded: each round takes >= 1 byte or fails, and the reader finishes within its bound.
    loop {
        let want = reader.want().clamp(1, HEADER_CHUNK);
        match splice::recv(stream.as_raw_fd(), &mut chunk[..want]) {
            Ok(Step::Moved(n)) => {
                let feed = reader.feed(&chunk[..n]).map_err(Some)?;
                if let Some(header) = feed.header {
                    return Ok((header, chunk[feed.consumed..n].to_vec()));
                }
            }
            Ok(Step::WouldBlock) => stream.readable(false).await.map_err(|_| None)?,
            Ok(Step::Eof) | Err(_) => return Err(None),
        }
    }
}

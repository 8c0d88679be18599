//! The server side of a TLS handshake on an admitted connection, as every TLS listener runs it:
//! the serving kit's handshake deadline cuts a silent or slow peer, a completed handshake moves
//! the slot to its first-request phase, a failed one is counted.

use std::io;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use tandem_serving::{Guarded, Slot};

/// Runs the handshake of `io` (admitted with `slot`) through `acceptor`.
pub async fn accept(
    acceptor: &TlsAcceptor,
    io: Guarded<TcpStream>,
    slot: &Slot,
) -> io::Result<TlsStream<Guarded<TcpStream>>> {
    match acceptor.accept(io).await {
        Ok(tls) => {
            slot.handshaken();
            Ok(tls)
        }
        Err(e) => {
            slot.count_failed_handshake();
            Err(e)
        }
    }
}

//! What every gRPC server of ours shares: [`serve_tls`] (the kit's accept loop, the TLS
//! handshake, naming the peer, tonic until shutdown), the TLS connection type tonic serves, the
//! grace after shutdown, and the ALPN protocol.

mod conn;
mod serve;

use std::time::Duration;

pub use conn::TlsConn;
pub use serve::{TlsListener, TlsPeers, TonicLimits, serve_tls};

/// After shutdown, how long open gRPC connections may finish before the server task returns.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The ALPN protocol of gRPC.
pub const ALPN_H2: &[u8] = b"h2";

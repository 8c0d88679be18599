//! What every gRPC server of ours shares: the TLS connection type tonic serves, the shutdown
//! wait, the grace after it, and the ALPN protocol.

mod conn;

use std::time::Duration;

pub use conn::TlsConn;

/// After shutdown, how long open gRPC connections may finish before the server task returns.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The ALPN protocol of gRPC.
pub const ALPN_H2: &[u8] = b"h2";

/// Resolves once `stop` is true (never, if the sender is gone without it).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let result = stop.wait_for(|s| *s).await.map(|_| ());
    if result.is_err() {
        std::future::pending::<()>().await;
    }
}

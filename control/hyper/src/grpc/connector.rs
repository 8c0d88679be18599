//! How the `grpc_client` reaches one peer: TCP to the entry's address (or a socket from the proxy
//! dialer), then a rustls client handshake with ServerName = the operator name, then the directory
//! check that the server's certificate is bound to that operator (SPEC §6.4). Used as tonic's
//! connector, so a reconnect repeats all of it.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use super::client::ProxyDialer;
use super::peer_identity::{PeerIdentity, identify};
use crate::broker::types::DirectorySource;

/// How the peer is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// Dial `host:port`.
    Direct(String),
    /// Ask the dialer for a socket through this proxy operator.
    Proxy(String),
}

/// Everything needed to (re)connect to one peer.
pub(crate) struct Connector {
    pub(crate) operator: String,
    pub(crate) route: Route,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) directory: Arc<dyn DirectorySource>,
    pub(crate) dialer: Option<Arc<dyn ProxyDialer>>,
    /// The server's identity at the last successful handshake.
    pub(crate) server: Arc<Mutex<Option<PeerIdentity>>>,
}

fn refused(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, what.to_string())
}

impl Connector {
    /// One connection attempt, all of it within the connect timeout.
    pub(crate) async fn connect(self: Arc<Self>) -> io::Result<TokioIo<TlsStream<TcpStream>>> {
        match tokio::time::timeout(self.connect_timeout, self.attempt()).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to {} took longer than {:.1}s",
                    self.operator,
                    self.connect_timeout.as_secs_f64()
                ),
            )),
        }
    }

    async fn attempt(&self) -> io::Result<TokioIo<TlsStream<TcpStream>>> {
        let tcp = match &self.route {
            Route::Direct(address) => TcpStream::connect(address.as_str()).await?,
            Route::Proxy(proxy) => {
                let dialer = self.dialer.as_ref().ok_or_else(|| {
                    refused(format!(
                        "destination is only reachable via proxy {proxy}, and no proxy dialer is installed"
                    ))
                })?;
                dialer.dial(&self.operator, proxy).await.map_err(refused)?
            }
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.operator.clone()).map_err(|_| {
            refused(format!(
                "{:?} is not a valid TLS server name",
                self.operator
            ))
        })?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let addr = tls.get_ref().0.peer_addr().ok();
        let leaf = tandem_net::tls::peer_leaf(tls.get_ref().1);
        let clients = identify(leaf.as_deref(), &*self.directory)
            .await
            .map_err(|e| refused(format!("server certificate of {}: {e}", self.operator)))?;
        if !clients.iter().any(|c| c.name == self.operator) {
            return Err(refused(format!(
                "server certificate is not bound to {} in the directory",
                self.operator
            )));
        }
        debug!(operator = %self.operator, "gRPC connection established");
        let identity = PeerIdentity {
            addr,
            clients: Arc::new(clients),
        };
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(identity);
        Ok(TokioIo::new(tls))
    }
}

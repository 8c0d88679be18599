//! [`ServerTls`]: a listener's rustls server config that a reload replaces atomically. Each
//! connection loads the config current when its handshake starts and keeps it: a connection keeps
//! the identity (certificate, key, client CA bundle) it was accepted with, new connections get
//! the new one. Loading is lock-free (`arc-swap`), so the accept path never waits for a reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A replaceable server config, shared by a listener's accept loop and its reloader. Cheap to
/// clone (one `Arc`).
#[derive(Clone)]
pub struct ServerTls(Arc<ArcSwap<ServerConfig>>);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn", &self.current().alpn_protocols.len())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Starts with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self(Arc::new(ArcSwap::new(config)))
    }

    /// The config new connections get now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.load_full()
    }

    /// An acceptor over the current config (one per connection).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current())
    }

    /// Installs `config` for connections accepted from now on; open ones keep theirs.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        self.0.store(config);
    }
}

impl From<Arc<ServerConfig>> for ServerTls {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self::new(config)
    }
}

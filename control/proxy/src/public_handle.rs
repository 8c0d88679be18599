//! (Child of `public`.) [`PublicHandle`]: what a caller may read of a running public proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use tandem_engine::{EngineHandle, LocalAddrs};

use super::{PublicProxy, PublicState};
use crate::stats::PublicProxyStats;

/// A cheap handle to read a running public proxy (stats, addresses, the engine).
#[derive(Clone)]
pub struct PublicHandle {
    pub(super) state: Arc<PublicState>,
}

impl PublicHandle {
    /// Where the ControlService listens, when it is configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.state.control_addr
    }

    /// The proxy's and the engine's counters.
    pub fn stats(&self) -> PublicProxyStats {
        PublicProxyStats {
            proxy: self.state.counters.snapshot(),
            engine: self.state.engine.stats(),
        }
    }

    /// The engine (pairing and TLS ports, pairs).
    pub fn engine(&self) -> &EngineHandle {
        &self.state.engine
    }

    /// The engine's bound ports.
    pub fn engine_addrs(&self) -> LocalAddrs {
        self.state.engine.local_addrs()
    }

    /// The pairing endpoint handed to peers.
    pub fn endpoint(&self) -> &str {
        &self.state.endpoint
    }

    /// The JSON-RPC server's bound address.
    pub fn jsonrpc_addr(&self) -> SocketAddr {
        self.state.jsonrpc_addr
    }
}

impl PublicProxy {
    /// A handle for stats and addresses.
    pub fn handle(&self) -> PublicHandle {
        PublicHandle {
            state: self.state.clone(),
        }
    }
}

//! What the engine and the control plane exchange besides calls: the SNI resolver the engine
//! asks (on a core thread) and the pair events it reports. A leaf of the engine's module
//! graph: it names only the sans-IO types it carries.

use std::net::SocketAddr;
use std::time::Duration;

use crate::clienthello::ClientHelloInfo;
use crate::pair_table::PairId;
use crate::relay::CloseReason;
use crate::token::Token;

/// Routes a TLS connection by its ClientHello. Called on a worker thread: it must not block
/// (create the pair with [`EngineHandle::create_pair`], notify the other side asynchronously,
/// and return at once). Returns the token of the side the TLS client joins (side A of an
/// `PairKind::Sni` pair), or `None` to refuse. The engine asks it only for hellos within the
/// SNI budgets (`sni_pairs_per_source`, `sni_pairs_per_domain`); `create_pair` called here
/// puts the pair on the calling core, which keeps the TLS client and its budget slot there.
pub trait SniResolver: Send + Sync + 'static {
    /// Answers for one ClientHello from `peer`.
    fn resolve(&self, hello: &ClientHelloInfo, peer: SocketAddr) -> Option<Token>;
}

impl<F> SniResolver for F
where
    F: Fn(&ClientHelloInfo, SocketAddr) -> Option<Token> + Send + Sync + 'static,
{
    fn resolve(&self, hello: &ClientHelloInfo, peer: SocketAddr) -> Option<Token> {
        self(hello, peer)
    }
}

/// A resolver that refuses everything (for engines without a TLS port).
#[derive(Debug, Clone, Copy)]
pub struct RefuseAll;

impl SniResolver for RefuseAll {
    fn resolve(&self, _: &ClientHelloInfo, _: SocketAddr) -> Option<Token> {
        None
    }
}

/// What happened to a pair, for the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairEvent {
    /// Both sides arrived; relaying starts.
    Paired {
        /// The pair.
        id: PairId,
        /// The peers of side A and side B (for the control plane's access log).
        sources: [SocketAddr; 2],
        /// How long the first side waited for the second.
        waited: Duration,
    },
    /// The pair ended (or never completed).
    Closed {
        /// The pair.
        id: PairId,
        /// Why.
        reason: CloseReason,
        /// Bytes from side A to side B.
        bytes_a_to_b: u64,
        /// Bytes from side B to side A.
        bytes_b_to_a: u64,
    },
}

impl PairEvent {
    pub(crate) fn closed(id: PairId, reason: CloseReason, bytes: [u64; 2]) -> Self {
        PairEvent::Closed {
            id,
            reason,
            bytes_a_to_b: bytes[0],
            bytes_b_to_a: bytes[1],
        }
    }
}

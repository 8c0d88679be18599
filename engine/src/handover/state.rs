//! What one process hands the next in a binary upgrade, as plain values: every socket is an
//! index into the file descriptors sent beside the message (`SCM_RIGHTS`), never an fd number.

use std::net::SocketAddr;
use std::time::Duration;

use crate::pair_table::{PairId, PairKind, Port, Side};
use crate::relay::throttle::BandwidthLimits;
use crate::token::Token;

/// Index of a socket in the fds that travel with an offer (0-based, each used once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdIndex(pub u32);

/// What a handed-over listening socket serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerRole {
    /// The engine's pairing port, the `SO_REUSEPORT` member of one core.
    Pairing {
        /// The core (position in the core list).
        core: u16,
    },
    /// The engine's TLS port, the member of one core.
    Tls {
        /// The core.
        core: u16,
    },
    /// The control plane's JSON-RPC server.
    JsonRpc,
    /// The ControlService.
    Control,
    /// The `/metrics` endpoint.
    Metrics,
}

/// A listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerEntry {
    /// What it serves.
    pub role: ListenerRole,
    /// Its socket.
    pub fd: FdIndex,
}

/// The side of an issued pair that arrived and waits for its partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingSide {
    /// Which side it is.
    pub side: Side,
    /// Its socket.
    pub fd: FdIndex,
    /// Its peer.
    pub peer: SocketAddr,
    /// The port it came in on.
    pub port: Port,
    /// Bytes read beyond its token (a ClientHello to replay), at most [`super::wire::MAX_PREFIX`].
    pub prefix: Vec<u8>,
}

/// A pair issued and not yet paired, with its tokens and what is left of its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPair {
    /// The pair (its core is the owner in the old process and in the new one: same token key,
    /// same core count).
    pub id: PairId,
    /// Side A's and side B's tokens.
    pub tokens: [Token; 2],
    /// Where each side arrives.
    pub kind: PairKind,
    /// Time left before its tokens expire.
    pub ttl_left: Duration,
    /// The side waiting, if one arrived.
    pub waiting: Option<WaitingSide>,
    /// The bandwidth limits it relays under once paired (pair rate, operator rate and key).
    pub limits: BandwidthLimits,
}

/// A relaying pair stopped at a quiet point (its pipes empty), with its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePair {
    /// The pair.
    pub id: PairId,
    /// Side A's and side B's sockets.
    pub fds: [FdIndex; 2],
    /// Bytes moved so far `[a→b, b→a]`.
    pub bytes: [u64; 2],
    /// Directions that reached EOF (the destination's write half is already shut down).
    pub eof: [bool; 2],
    /// The bandwidth limits it relays under (its buckets start full again in the new process).
    pub limits: BandwidthLimits,
}

/// Everything the engine hands over: the token map's key and core count (the new engine must
/// route a token to the same core), its listeners, issued pairs with their waiting sides, and
/// live pairs; plus the control plane's own listeners and an opaque section it encodes itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandoverState {
    /// The token map's SipHash key.
    pub token_key: [u64; 2],
    /// Worker cores of the old engine.
    pub cores: u16,
    /// Number of fds sent with the offer; every [`FdIndex`] is below it, each used once.
    pub fds: u32,
    /// Listening sockets.
    pub listeners: Vec<ListenerEntry>,
    /// Issued pairs (some with a waiting side).
    pub issued: Vec<IssuedPair>,
    /// Relaying pairs.
    pub live: Vec<LivePair>,
    /// The control plane's own section (the public proxy's quota bookkeeping, versioned by
    /// its own header), at most [`super::wire::MAX_EXTRA`] bytes; the engine does not read it.
    pub extra: Vec<u8>,
}

impl HandoverState {
    /// Every fd index the state names, in the order it names them.
    pub fn fd_indices(&self) -> Vec<FdIndex> {
        let mut out: Vec<FdIndex> = self.listeners.iter().map(|l| l.fd).collect();
        out.extend(
            self.issued
                .iter()
                .filter_map(|p| p.waiting.as_ref().map(|w| w.fd)),
        );
        out.extend(self.live.iter().flat_map(|p| p.fds));
        out
    }
}

//! What crosses between threads into a core: the messages of its bounded mailbox, including a
//! socket handed over from the core that accepted it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::pair_table::{PairId, PairKind, Port};
use crate::relay::throttle::BandwidthLimits;
use crate::token::Token;

/// A message into a core's mailbox.
pub(crate) enum CoreMsg {
    /// Issue a pair owned by this core.
    Register {
        id: PairId,
        tokens: [Token; 2],
        kind: PairKind,
        ttl: Duration,
        /// Applied when the pair starts relaying (boxed, only when limited: keeps every
        /// message small; the box is made on the control plane's thread, once per pair).
        limits: Option<Box<BandwidthLimits>>,
    },
    /// Cancel a pair not yet completed.
    Cancel { seq: u64 },
    /// A socket accepted by another core whose token this core owns.
    Arrive(Handoff),
    /// Stop accepting, let pairs finish for `grace`, then close the rest.
    Drain { grace: Duration },
}

/// A socket moving between cores: the fd (owned; closed if the message is dropped) and the
/// bytes already read from it beyond the token (a ClientHello on the TLS port).
pub(crate) struct Handoff {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub token: Token,
    pub port: Port,
    pub prefix: Vec<u8>,
}

//! What crosses between threads into a core: the messages of its bounded mailbox, including a
//! socket handed over from the core that accepted it.

use std::net::SocketAddr;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use crate::pair_table::{PairId, PairKind, Port, Taken};
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
    /// Binary upgrade: stop accepting and relaying; answer when quiet or at `deadline`.
    Pause {
        deadline: Instant,
        reply: SyncSender<()>,
    },
    /// Binary upgrade: hand the table and the paused pairs over.
    Export { reply: SyncSender<CoreExport> },
    /// Adopt listeners and pairs (the next process, or this one after a failed upgrade).
    Adopt(Box<CoreImport>),
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

/// A relaying pair stopped by a pause, its pipes empty.
pub(crate) struct Parked {
    pub id: PairId,
    pub streams: [std::net::TcpStream; 2],
    pub bytes: [u64; 2],
    pub eof: [bool; 2],
    /// Its bandwidth limits, applied again when it resumes.
    pub limits: BandwidthLimits,
}

/// A waiting side as a plain socket.
pub(crate) struct WaitingConn {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub port: Port,
    pub prefix: Vec<u8>,
}

/// An issued pair taken out of a table, with the bandwidth limits it relays under once paired.
pub(crate) type TakenPair = (Taken<WaitingConn>, BandwidthLimits);

/// What one core hands over.
#[derive(Default)]
pub(crate) struct CoreExport {
    pub issued: Vec<TakenPair>,
    pub live: Vec<Parked>,
}

/// What one core adopts.
#[derive(Default)]
pub(crate) struct CoreImport {
    pub listeners: Vec<(Port, std::net::TcpListener)>,
    pub issued: Vec<TakenPair>,
    pub live: Vec<Parked>,
}

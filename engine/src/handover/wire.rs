//! The versioned hand-over format, sans-IO: frames of bytes in, messages out, and back.
//!
//! A frame is `MAGIC (8) | version u16 | kind u8 | body length u32 | body`, big-endian. The
//! new process speaks first (`Hello` with the versions it reads); the old one answers with an
//! `Offer` in a version both read, or a `Refuse` naming why; the new one answers `Ready` or
//! `Refuse`. Every length and count is bounded below, and a decoder never allocates more than
//! the bytes it was given can fill, so a hostile peer costs at most one frame's bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::state::{
    FdIndex, HandoverState, IssuedPair, ListenerEntry, ListenerRole, LivePair, WaitingSide,
};
use crate::pair_table::{PairId, PairKind, Port, Side};
use crate::token::{CoreId, TOKEN_LEN, Token};

/// First bytes of every frame.
pub const MAGIC: [u8; 8] = *b"TNDMHOV\0";
/// The format this build writes.
pub const VERSION: u16 = 1;
/// The oldest format this build reads.
pub const MIN_VERSION: u16 = 1;
/// Bytes before a frame's body.
pub const HEADER_LEN: usize = 15;
/// Largest frame body, in bytes: 4 Mi live pairs at ~110 bytes each with room to spare.
pub const MAX_BODY: usize = 512 << 20;
/// Most cores a state names (the engine's own bound on a core list is lower).
pub const MAX_CORES: u16 = 1024;
/// Most listening sockets: two engine ports per core and the control plane's three.
pub const MAX_LISTENERS: usize = 2 * MAX_CORES as usize + 3;
/// Most issued or live pairs in one state (each): above any `max_pairs_per_core × cores`
/// the settings accept.
pub const MAX_PAIRS: usize = 4 << 20;
/// Largest buffered prefix of a waiting side: the engine's `hello_max_bytes` bound.
pub const MAX_PREFIX: usize = 64 * 1024;
/// Largest control-plane section (announcements), in bytes.
pub const MAX_EXTRA: usize = 64 << 20;
/// Longest refusal reason, in bytes (longer ones are cut at a char boundary when encoded).
pub const MAX_REASON: usize = 1024;

/// One message of the hand-over conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// New → old: the versions the new binary reads, and its pid.
    Hello {
        /// Oldest version it reads.
        min: u16,
        /// Newest version it reads.
        max: u16,
        /// Its process id.
        pid: u32,
    },
    /// Old → new: the state (its fds follow the frame).
    Offer(HandoverState),
    /// New → old: everything adopted and served.
    Ready {
        /// Its process id.
        pid: u32,
    },
    /// Either way: no hand-over, and why.
    Refuse {
        /// Why (at most [`MAX_REASON`] bytes).
        reason: String,
    },
}

const KIND_HELLO: u8 = 1;
const KIND_OFFER: u8 = 2;
const KIND_READY: u8 = 3;
const KIND_REFUSE: u8 = 4;

/// A frame that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a hand-over frame.
    #[error("not a hand-over frame (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error(
        "hand-over format version {found} is not read by this build (reads {MIN_VERSION}..={VERSION})"
    )]
    Version {
        /// The frame's version.
        found: u16,
    },
    /// An unknown message kind.
    #[error("unknown hand-over message kind {0}")]
    Kind(u8),
    /// A length or count above its bound.
    #[error("hand-over {what} is {found}, above the bound {max}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// Its value.
        found: u64,
        /// Its bound.
        max: u64,
    },
    /// The body ended early or has bytes left over.
    #[error("hand-over body is malformed: {0}")]
    Malformed(&'static str),
}

impl WireError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::BadMagic => "bad_magic",
            WireError::Version { .. } => "version",
            WireError::Kind(_) => "kind",
            WireError::TooLarge { .. } => "too_large",
            WireError::Malformed(_) => "malformed",
        }
    }
}

/// Reads a frame's header: `Ok(None)` until `HEADER_LEN` bytes are there, then the message
/// kind and body length (checked against [`MAX_BODY`] and the versions read).
pub fn decode_header(buf: &[u8]) -> Result<Option<(u16, u8, usize)>, WireError> {
    if buf.len() < HEADER_LEN {
        // A wrong first byte is refused at once, not after the peer sent a whole header.
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            return Err(WireError::BadMagic);
        }
        return Ok(None);
    }
    if buf[..8] != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = u16::from_be_bytes([buf[8], buf[9]]);
    let kind = buf[10];
    let len = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]) as usize;
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(WireError::Version { found: version });
    }
    if !(KIND_HELLO..=KIND_REFUSE).contains(&kind) {
        return Err(WireError::Kind(kind));
    }
    bound("frame body", len, MAX_BODY)?;
    Ok(Some((version, kind, len)))
}

/// Decodes one whole frame at the start of `buf`: `Ok(None)` while it is incomplete, else the
/// message and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some((_version, kind, len)) = decode_header(buf)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let mut r = Reader(body);
    let msg = match kind {
        KIND_HELLO => Message::Hello {
            min: r.u16()?,
            max: r.u16()?,
            pid: r.u32()?,
        },
        KIND_OFFER => Message::Offer(read_state(&mut r)?),
        KIND_READY => Message::Ready { pid: r.u32()? },
        _ => {
            let n = r.len(MAX_REASON, "refusal reason")?;
            let bytes = r.take(n)?;
            let reason = String::from_utf8_lossy(bytes).into_owned();
            Message::Refuse { reason }
        }
    };
    if !r.0.is_empty() {
        return Err(WireError::Malformed("bytes after the message"));
    }
    Ok(Some((msg, HEADER_LEN + len)))
}

/// Encodes `msg` as one frame of the current version.
pub fn encode(msg: &Message) -> Result<Vec<u8>, WireError> {
    let mut w = Vec::with_capacity(64);
    w.extend_from_slice(&MAGIC);
    w.extend_from_slice(&VERSION.to_be_bytes());
    let kind = match msg {
        Message::Hello { .. } => KIND_HELLO,
        Message::Offer(_) => KIND_OFFER,
        Message::Ready { .. } => KIND_READY,
        Message::Refuse { .. } => KIND_REFUSE,
    };
    w.push(kind);
    w.extend_from_slice(&[0; 4]);
    match msg {
        Message::Hello { min, max, pid } => {
            w.extend_from_slice(&min.to_be_bytes());
            w.extend_from_slice(&max.to_be_bytes());
            w.extend_from_slice(&pid.to_be_bytes());
        }
        Message::Offer(s) => write_state(&mut w, s)?,
        Message::Ready { pid } => w.extend_from_slice(&pid.to_be_bytes()),
        Message::Refuse { reason } => {
            let mut end = reason.len().min(MAX_REASON);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            put_len(&mut w, end);
            w.extend_from_slice(&reason.as_bytes()[..end]);
        }
    }
    let body = w.len() - HEADER_LEN;
    bound("frame body", body, MAX_BODY)?;
    w[11..15].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(w)
}

fn bound(what: &'static str, found: usize, max: usize) -> Result<(), WireError> {
    if found > max {
        return Err(WireError::TooLarge {
            what,
            found: found as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// The versions both sides read, newest first: `None` when the ranges do not meet.
pub fn agree(min: u16, max: u16) -> Option<u16> {
    let hi = max.min(VERSION);
    (hi >= min.max(MIN_VERSION)).then_some(hi)
}

fn put_len(w: &mut Vec<u8>, n: usize) {
    // Every caller checked `n` against a bound below u32::MAX.
    w.extend_from_slice(&(n as u32).to_be_bytes());
}

fn write_state(w: &mut Vec<u8>, s: &HandoverState) -> Result<(), WireError> {
    bound("core count", s.cores as usize, MAX_CORES as usize)?;
    bound("listener count", s.listeners.len(), MAX_LISTENERS)?;
    bound("issued pair count", s.issued.len(), MAX_PAIRS)?;
    bound("live pair count", s.live.len(), MAX_PAIRS)?;
    bound("extra section", s.extra.len(), MAX_EXTRA)?;
    w.extend_from_slice(&s.token_key[0].to_be_bytes());
    w.extend_from_slice(&s.token_key[1].to_be_bytes());
    w.extend_from_slice(&s.cores.to_be_bytes());
    w.extend_from_slice(&s.fds.to_be_bytes());
    put_len(w, s.listeners.len());
    for l in &s.listeners {
        let (tag, core) = match l.role {
            ListenerRole::Pairing { core } => (0u8, core),
            ListenerRole::Tls { core } => (1, core),
            ListenerRole::JsonRpc => (2, 0),
            ListenerRole::Control => (3, 0),
            ListenerRole::Metrics => (4, 0),
        };
        w.push(tag);
        w.extend_from_slice(&core.to_be_bytes());
        w.extend_from_slice(&l.fd.0.to_be_bytes());
    }
    put_len(w, s.issued.len());
    for p in &s.issued {
        put_id(w, p.id);
        w.extend_from_slice(p.tokens[0].as_bytes());
        w.extend_from_slice(p.tokens[1].as_bytes());
        w.push(match p.kind {
            PairKind::Direct => 0,
            PairKind::Sni => 1,
        });
        w.extend_from_slice(&(p.ttl_left.as_millis().min(u64::MAX as u128) as u64).to_be_bytes());
        match &p.waiting {
            None => w.push(0),
            Some(ws) => {
                bound("waiting prefix", ws.prefix.len(), MAX_PREFIX)?;
                w.push(match ws.side {
                    Side::A => 1,
                    Side::B => 2,
                });
                w.extend_from_slice(&ws.fd.0.to_be_bytes());
                put_addr(w, ws.peer);
                w.push(match ws.port {
                    Port::Pairing => 0,
                    Port::Tls => 1,
                });
                put_len(w, ws.prefix.len());
                w.extend_from_slice(&ws.prefix);
            }
        }
    }
    put_len(w, s.live.len());
    for p in &s.live {
        put_id(w, p.id);
        for fd in p.fds {
            w.extend_from_slice(&fd.0.to_be_bytes());
        }
        for b in p.bytes {
            w.extend_from_slice(&b.to_be_bytes());
        }
        w.push(u8::from(p.eof[0]) | (u8::from(p.eof[1]) << 1));
    }
    put_len(w, s.extra.len());
    w.extend_from_slice(&s.extra);
    Ok(())
}

fn put_id(w: &mut Vec<u8>, id: PairId) {
    // Core indices are below MAX_CORES (checked when the state is built and decoded).
    w.extend_from_slice(&(id.core.0.min(u16::MAX as usize) as u16).to_be_bytes());
    w.extend_from_slice(&id.seq.to_be_bytes());
}

fn put_addr(w: &mut Vec<u8>, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            w.push(4);
            w.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            w.push(6);
            w.extend_from_slice(&ip.octets());
        }
    }
    w.extend_from_slice(&a.port().to_be_bytes());
}

/// The smallest encoding of an issued pair and of a live pair: what a count may claim per
/// remaining byte when a vector is reserved.
const MIN_ISSUED: usize = 10 + 2 * TOKEN_LEN + 1 + 8 + 1;
const MIN_LIVE: usize = 10 + 8 + 16 + 1;

fn read_state(r: &mut Reader<'_>) -> Result<HandoverState, WireError> {
    let token_key = [r.u64()?, r.u64()?];
    let cores = r.u16()?;
    if cores == 0 || cores > MAX_CORES {
        return Err(WireError::Malformed("core count out of 1..=1024"));
    }
    let fds = r.u32()?;
    let n = r.len(MAX_LISTENERS, "listener count")?;
    let mut listeners = Vec::with_capacity(n.min(r.0.len() / 7));
    for _ in 0..n {
        let tag = r.u8()?;
        let core = r.u16()?;
        let role = match tag {
            0 => ListenerRole::Pairing { core },
            1 => ListenerRole::Tls { core },
            2 => ListenerRole::JsonRpc,
            3 => ListenerRole::Control,
            4 => ListenerRole::Metrics,
            _ => return Err(WireError::Malformed("unknown listener role")),
        };
        if core >= cores {
            return Err(WireError::Malformed("listener core out of range"));
        }
        listeners.push(ListenerEntry {
            role,
            fd: FdIndex(r.u32()?),
        });
    }
    let n = r.len(MAX_PAIRS, "issued pair count")?;
    let mut issued = Vec::with_capacity(n.min(r.0.len() / MIN_ISSUED));
    for _ in 0..n {
        issued.push(read_issued(r, cores)?);
    }
    let n = r.len(MAX_PAIRS, "live pair count")?;
    let mut live = Vec::with_capacity(n.min(r.0.len() / MIN_LIVE));
    for _ in 0..n {
        let id = r.id(cores)?;
        let fds = [FdIndex(r.u32()?), FdIndex(r.u32()?)];
        let bytes = [r.u64()?, r.u64()?];
        let flags = r.u8()?;
        if flags > 3 {
            return Err(WireError::Malformed("unknown EOF flags"));
        }
        live.push(LivePair {
            id,
            fds,
            bytes,
            eof: [flags & 1 != 0, flags & 2 != 0],
        });
    }
    let n = r.len(MAX_EXTRA, "extra section")?;
    let extra = r.take(n)?.to_vec();
    let state = HandoverState {
        token_key,
        cores,
        fds,
        listeners,
        issued,
        live,
        extra,
    };
    check_fds(&state)?;
    Ok(state)
}

fn read_issued(r: &mut Reader<'_>, cores: u16) -> Result<IssuedPair, WireError> {
    let id = r.id(cores)?;
    let tokens = [r.token()?, r.token()?];
    let kind = match r.u8()? {
        0 => PairKind::Direct,
        1 => PairKind::Sni,
        _ => return Err(WireError::Malformed("unknown pair kind")),
    };
    let ttl_left = Duration::from_millis(r.u64()?);
    let waiting = match r.u8()? {
        0 => None,
        tag @ (1 | 2) => {
            let side = if tag == 1 { Side::A } else { Side::B };
            let fd = FdIndex(r.u32()?);
            let peer = r.addr()?;
            let port = match r.u8()? {
                0 => Port::Pairing,
                1 => Port::Tls,
                _ => return Err(WireError::Malformed("unknown port")),
            };
            let n = r.len(MAX_PREFIX, "waiting prefix")?;
            let prefix = r.take(n)?.to_vec();
            Some(WaitingSide {
                side,
                fd,
                peer,
                port,
                prefix,
            })
        }
        _ => return Err(WireError::Malformed("unknown waiting side")),
    };
    Ok(IssuedPair {
        id,
        tokens,
        kind,
        ttl_left,
        waiting,
    })
}

/// Every fd index is below `fds` and used once; every fd sent is named.
fn check_fds(s: &HandoverState) -> Result<(), WireError> {
    let named = s.fd_indices();
    if named.len() != s.fds as usize {
        return Err(WireError::Malformed(
            "fd count differs from the sockets named",
        ));
    }
    let mut seen = vec![false; named.len()];
    for FdIndex(i) in named {
        match seen.get_mut(i as usize) {
            Some(slot) if !*slot => *slot = true,
            Some(_) => return Err(WireError::Malformed("an fd is named twice")),
            None => return Err(WireError::Malformed("fd index out of range")),
        }
    }
    Ok(())
}

/// A cursor over a body that refuses to read past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed("body ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn len(&mut self, max: usize, what: &'static str) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        bound(what, n, max)?;
        Ok(n)
    }
    fn id(&mut self, cores: u16) -> Result<PairId, WireError> {
        let core = self.u16()?;
        if core >= cores {
            return Err(WireError::Malformed("pair core out of range"));
        }
        Ok(PairId {
            core: CoreId(core as usize),
            seq: self.u64()?,
        })
    }
    fn token(&mut self) -> Result<Token, WireError> {
        Ok(Token::from_bytes(self.array()?))
    }
    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err(WireError::Malformed("unknown address family")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;

//! The offer's body (a child of `wire`): the state written field by field, and read back
//! with every count and length checked against its bound before anything is reserved.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::{MAX_CORES, MAX_EXTRA, MAX_LISTENERS, MAX_PAIRS, MAX_PREFIX, WireError, bound};
use crate::handover::state::{
    FdIndex, HandoverState, IssuedPair, ListenerEntry, ListenerRole, LivePair, WaitingSide,
};
use crate::pair_table::{PairId, PairKind, Port, Side};
use crate::token::{CoreId, TOKEN_LEN, Token};

pub(super) fn put_len(w: &mut Vec<u8>, n: usize) {
    // Every caller checked `n` against a bound below u32::MAX.
    w.extend_from_slice(&(n as u32).to_be_bytes());
}

pub(super) fn write_state(w: &mut Vec<u8>, s: &HandoverState) -> Result<(), WireError> {
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
        put_limits(w, &p.limits);
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
        put_limits(w, &p.limits);
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
const MIN_ISSUED: usize = 10 + 2 * TOKEN_LEN + 1 + 8 + 1 + 1;
const MIN_LIVE: usize = 10 + 8 + 16 + 1 + 1;

pub(super) fn read_state(r: &mut Reader<'_>) -> Result<HandoverState, WireError> {
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
            limits: read_limits(r)?,
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
        limits: read_limits(r)?,
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

#[path = "wire_limits.rs"]
mod limits;
use limits::{put_limits, read_limits};

/// A cursor over a body that refuses to read past its end.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
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
    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(super) fn len(&mut self, max: usize, what: &'static str) -> Result<usize, WireError> {
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

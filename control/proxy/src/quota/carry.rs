//! The quota bookkeeping a binary upgrade carries to the next process ([`QuotaCarry`]), and
//! its versioned encoding in the proxy's part of the hand-over (the state's `extra` section).
//! Sans-IO: bytes in, values out; every count and length is checked against its bound before
//! anything is reserved.
//!
//! Format (big-endian): `MAGIC (8) | version u16 | taken_at u64 (ms since the epoch) |
//! names u32, each name u8 length + bytes | counts u32, each (name u32, pairs this minute u64,
//! bytes today u64) | owners u32, each (core u16, seq u64, name u32, waiting u8, expires_at
//! u64 ms)`. Live and waiting counts are not carried: the new process counts its owners.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_engine::{CoreId, PairId};
use tandem_types::MAX_OPERATOR_NAME_BYTES;

use super::memory::MAX_COUNTED_OPERATORS;
use super::owners::MAX_OWNED_PAIRS;

/// First bytes of the proxy's section.
pub const CARRY_MAGIC: [u8; 8] = *b"TNDMPXQ\0";
/// The version of the proxy's section this build writes and reads (only this one: a section
/// this build cannot read refuses the hand-over, and the old process serves on).
pub const CARRY_VERSION: u16 = 1;
/// Operator names in one section: every operator counted and every owner's operator. With
/// names of at most 255 bytes the largest section is ~46 MB, below the hand-over's 64 MiB
/// bound on it (`tandem_engine::handover::wire::MAX_EXTRA`).
pub const MAX_CARRIED_NAMES: usize = MAX_COUNTED_OPERATORS + MAX_OWNED_PAIRS;

/// An operator's windowed counts when they were taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarriedCount {
    /// The operator.
    pub operator: String,
    /// Pairs created in the UTC minute of `taken_at`.
    pub pairs_this_minute: u64,
    /// Bytes of ended pairs in the UTC day of `taken_at`.
    pub bytes_today: u64,
}

/// A handed-over pair's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarriedOwner {
    /// The pair.
    pub id: PairId,
    /// Its operator.
    pub operator: String,
    /// Not yet paired.
    pub waiting: bool,
    /// When its tokens expire (a waiting pair's owner may be dropped after it).
    pub expires_at: SystemTime,
}

/// The quota bookkeeping handed over: at most [`MAX_COUNTED_OPERATORS`] counts and
/// [`MAX_OWNED_PAIRS`] owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaCarry {
    /// When the counts were taken (their minute and day windows).
    pub taken_at: SystemTime,
    /// Each counted operator's windowed counts.
    pub counts: Vec<CarriedCount>,
    /// The owners of the pairs handed over.
    pub owners: Vec<CarriedOwner>,
}

/// A proxy section that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CarryError {
    /// Not the proxy's quota section.
    #[error("the hand-over's proxy section is not a quota section (bad magic)")]
    BadMagic,
    /// Another version.
    #[error(
        "the hand-over's proxy section has version {found}; this build reads only {CARRY_VERSION}"
    )]
    Version {
        /// The section's version.
        found: u16,
    },
    /// A count above its bound.
    #[error("the hand-over's proxy section names {found} {what}, above the bound {max}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// Its value.
        found: usize,
        /// Its bound.
        max: usize,
    },
    /// Ends early, has bytes left over, or names something out of range.
    #[error("the hand-over's proxy section is malformed: {0}")]
    Malformed(&'static str),
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

fn bound(what: &'static str, found: usize, max: usize) -> Result<(), CarryError> {
    if found > max {
        return Err(CarryError::TooLarge { what, found, max });
    }
    Ok(())
}

impl QuotaCarry {
    /// The section's bytes; refuses (rather than cuts) a carry above its bounds.
    pub fn encode(&self) -> Result<Vec<u8>, CarryError> {
        bound("counts", self.counts.len(), MAX_COUNTED_OPERATORS)?;
        bound("owners", self.owners.len(), MAX_OWNED_PAIRS)?;
        let mut names = Names::default();
        let counts: Vec<(u32, &CarriedCount)> = self
            .counts
            .iter()
            .map(|c| Ok((names.index(&c.operator)?, c)))
            .collect::<Result<_, CarryError>>()?;
        let owners: Vec<(u32, &CarriedOwner)> = self
            .owners
            .iter()
            .map(|o| Ok((names.index(&o.operator)?, o)))
            .collect::<Result<_, CarryError>>()?;
        let names = names.list;
        let mut w = Vec::with_capacity(32 + names.len() * 16 + owners.len() * 23);
        w.extend_from_slice(&CARRY_MAGIC);
        w.extend_from_slice(&CARRY_VERSION.to_be_bytes());
        w.extend_from_slice(&millis(self.taken_at).to_be_bytes());
        // Every count below is bounded above, far below u32::MAX.
        w.extend_from_slice(&(names.len() as u32).to_be_bytes());
        for n in names {
            w.push(n.len() as u8);
            w.extend_from_slice(n.as_bytes());
        }
        w.extend_from_slice(&(counts.len() as u32).to_be_bytes());
        for (i, c) in counts {
            w.extend_from_slice(&i.to_be_bytes());
            w.extend_from_slice(&c.pairs_this_minute.to_be_bytes());
            w.extend_from_slice(&c.bytes_today.to_be_bytes());
        }
        w.extend_from_slice(&(owners.len() as u32).to_be_bytes());
        for (i, o) in owners {
            // Core indices are below the engine's core bound (1024).
            w.extend_from_slice(&(o.id.core.0.min(u16::MAX as usize) as u16).to_be_bytes());
            w.extend_from_slice(&o.id.seq.to_be_bytes());
            w.extend_from_slice(&i.to_be_bytes());
            w.push(u8::from(o.waiting));
            w.extend_from_slice(&millis(o.expires_at).to_be_bytes());
        }
        Ok(w)
    }

    /// Reads a section written by [`QuotaCarry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<QuotaCarry, CarryError> {
        let mut r = Reader(bytes);
        if r.take(CARRY_MAGIC.len())? != CARRY_MAGIC {
            return Err(CarryError::BadMagic);
        }
        let version = r.u16()?;
        if version != CARRY_VERSION {
            return Err(CarryError::Version { found: version });
        }
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let taken_at = at(r.u64()?);
        let n = r.count("operator names", MAX_CARRIED_NAMES)?;
        let mut names = Vec::with_capacity(n.min(r.0.len() / 2));
        for _ in 0..n {
            let len = r.u8()? as usize;
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| CarryError::Malformed("an operator name is not UTF-8"))?;
            names.push(name.to_owned());
        }
        let name = |i: u32| {
            names
                .get(i as usize)
                .cloned()
                .ok_or(CarryError::Malformed("a name index out of range"))
        };
        let n = r.count("counts", MAX_COUNTED_OPERATORS)?;
        let mut counts = Vec::with_capacity(n.min(r.0.len() / 20));
        for _ in 0..n {
            counts.push(CarriedCount {
                operator: name(r.u32()?)?,
                pairs_this_minute: r.u64()?,
                bytes_today: r.u64()?,
            });
        }
        let n = r.count("owners", MAX_OWNED_PAIRS)?;
        let mut owners = Vec::with_capacity(n.min(r.0.len() / 23));
        for _ in 0..n {
            let core = CoreId(r.u16()? as usize);
            let seq = r.u64()?;
            let operator = name(r.u32()?)?;
            let waiting = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(CarryError::Malformed("unknown waiting flag")),
            };
            owners.push(CarriedOwner {
                id: PairId { core, seq },
                operator,
                waiting,
                expires_at: at(r.u64()?),
            });
        }
        if !r.0.is_empty() {
            return Err(CarryError::Malformed("bytes after the section"));
        }
        Ok(QuotaCarry {
            taken_at,
            counts,
            owners,
        })
    }
}

/// The operator names of a section, each once, with their indices.
#[derive(Default)]
struct Names<'a> {
    list: Vec<&'a str>,
    index: std::collections::HashMap<&'a str, u32>,
}

impl<'a> Names<'a> {
    fn index(&mut self, name: &'a str) -> Result<u32, CarryError> {
        bound("operator name bytes", name.len(), MAX_OPERATOR_NAME_BYTES)?;
        let next = self.list.len() as u32;
        let i = *self.index.entry(name).or_insert(next);
        if i == next {
            self.list.push(name);
        }
        Ok(i)
    }
}

/// A cursor that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CarryError> {
        if self.0.len() < n {
            return Err(CarryError::Malformed("the section ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CarryError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, CarryError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, CarryError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CarryError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CarryError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn count(&mut self, what: &'static str, max: usize) -> Result<usize, CarryError> {
        let n = self.u32()? as usize;
        bound(what, n, max)?;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "carry_tests.rs"]
mod tests;

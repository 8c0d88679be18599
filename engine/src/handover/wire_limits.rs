//! A pair's bandwidth limits in the offer's body (a child of `wire_body`): one flags byte
//! (bit 0: a pair rate follows, bit 1: an operator's key and rate follow), each rate as
//! bytes per second and burst bytes, both `u64` and non-zero. At most 41 bytes per pair.

use std::num::NonZeroU64;

use super::Reader;
use crate::handover::wire::WireError;
use crate::relay::throttle::{BandwidthLimits, ByteRate, OperatorBandwidth};

const HAS_PAIR: u8 = 1;
const HAS_OPERATOR: u8 = 2;

pub(super) fn put_limits(w: &mut Vec<u8>, l: &BandwidthLimits) {
    let flags = if l.pair.is_some() { HAS_PAIR } else { 0 }
        | if l.operator.is_some() {
            HAS_OPERATOR
        } else {
            0
        };
    w.push(flags);
    if let Some(r) = l.pair {
        put_rate(w, r);
    }
    if let Some(op) = l.operator {
        w.extend_from_slice(&op.key.to_be_bytes());
        put_rate(w, op.rate);
    }
}

fn put_rate(w: &mut Vec<u8>, r: ByteRate) {
    w.extend_from_slice(&r.per_second.get().to_be_bytes());
    w.extend_from_slice(&r.burst.get().to_be_bytes());
}

pub(super) fn read_limits(r: &mut Reader<'_>) -> Result<BandwidthLimits, WireError> {
    let flags = r.u8()?;
    if flags & !(HAS_PAIR | HAS_OPERATOR) != 0 {
        return Err(WireError::Malformed("unknown bandwidth limit flags"));
    }
    let pair = if flags & HAS_PAIR != 0 {
        Some(read_rate(r)?)
    } else {
        None
    };
    let operator = if flags & HAS_OPERATOR != 0 {
        let key = r.u64()?;
        Some(OperatorBandwidth {
            key,
            rate: read_rate(r)?,
        })
    } else {
        None
    };
    Ok(BandwidthLimits { pair, operator })
}

fn read_rate(r: &mut Reader<'_>) -> Result<ByteRate, WireError> {
    let nonzero = |v: u64| NonZeroU64::new(v).ok_or(WireError::Malformed("a zero bandwidth rate"));
    Ok(ByteRate {
        per_second: nonzero(r.u64()?)?,
        burst: nonzero(r.u64()?)?,
    })
}

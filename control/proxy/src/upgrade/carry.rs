//! The proxy's own part of the hand-over (the state's `extra` section, which the engine does
//! not read): the quota bookkeeping of [`crate::quota::QuotaCarry`], versioned by its own
//! header. The old process writes it after the engine's export (so it names exactly the pairs
//! handed over); the new one reads it before it starts anything, and refuses the hand-over
//! (the old process serves on) when it cannot.

use std::time::SystemTime;

use tandem_engine::handover::Bundle;
use tandem_engine::handover::wire::MAX_EXTRA;
use tracing::warn;

use super::UpgradeError;
use crate::ProxyError;
use crate::quota::{CarryError, QuotaCarry, Quotas};

/// Writes `quotas`' bookkeeping of the pairs in `bundle` into its proxy section.
pub(crate) fn carry_out(quotas: &Quotas, bundle: &mut Bundle) -> Result<(), UpgradeError> {
    let issued: Vec<_> = bundle.state.issued.iter().map(|p| p.id).collect();
    let live: Vec<_> = bundle.state.live.iter().map(|p| p.id).collect();
    let carry = quotas.hand_over(&issued, &live, SystemTime::now());
    let bytes = carry.encode()?;
    if bytes.len() > MAX_EXTRA {
        return Err(CarryError::TooLarge {
            what: "section bytes",
            found: bytes.len(),
            max: MAX_EXTRA,
        }
        .into());
    }
    bundle.state.extra = bytes;
    Ok(())
}

/// Reads the proxy section of an inherited state: `None` when the previous process wrote none
/// (nothing to take over), an error when it cannot be read.
pub(crate) fn read_carried(bundle: &Bundle) -> Result<Option<QuotaCarry>, ProxyError> {
    if bundle.state.extra.is_empty() {
        warn!("the previous process handed over no quota bookkeeping; quotas count from zero");
        return Ok(None);
    }
    QuotaCarry::decode(&bundle.state.extra)
        .map(Some)
        .map_err(|e| ProxyError::Settings(format!("inheriting the quota bookkeeping: {e}")))
}

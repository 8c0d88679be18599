//! `quotas:` of the public proxy (Tandem addition): per-operator quotas on the pairs an operator
//! asks for (`requestConnection`, the ControlService's `CreatePair`) and the bandwidth its pairs
//! relay at. Every key is optional; an absent quota is no limit.
//!
//! ```yaml
//! quotas:
//!   default:            # every operator
//!     live_pairs: 1000
//!     pairs_per_minute: 600
//!     waiting_pairs: 100
//!     bytes_per_day: 1099511627776
//!     pair_bandwidth: {bytes_per_second: 12500000, burst: 262144}
//!     operator_bandwidth: {bytes_per_second: 125000000}
//!   operators:          # per operator: each key given replaces the default's
//!     hd-1: {live_pairs: 10000, pair_bandwidth: {bytes_per_second: 125000000}}
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use serde::Deserialize;
use tandem_engine::ByteRate;
use tandem_settings::error::FieldIssues;

/// Most operators `quotas.operators` may name. They are also the `operator` label values of
/// the quota metrics (plus `other`), so this bounds those series too.
pub const MAX_QUOTA_OPERATORS: usize = 1024;
/// Largest `bytes_per_second`: 10¹² B/s (8 Tbit/s), beyond any NIC; a larger value is a typo.
pub const MAX_BYTES_PER_SECOND: u64 = 1_000_000_000_000;
/// Largest `burst`: 1 TiB (the bucket counts in `u128` nano-bytes, so this is far from overflow).
pub const MAX_BURST: u64 = 1 << 40;
/// The default burst is this fraction of a second of the rate (20 ms), at least
/// [`MIN_DEFAULT_BURST`]: enough head-room for a loaded core's timer lateness to cost no rate.
pub const DEFAULT_BURST_DIVISOR: u64 = 50;
/// The smallest burst is this fraction of a second of the rate (10 ms): a limited direction
/// parks at least 1 ms (`tandem_engine::relay::throttle::MIN_PARK`) and wakes at half its burst,
/// so a smaller bucket would lose the credit earned while a loaded core wakes it late.
pub const MIN_BURST_DIVISOR: u64 = 100;
/// Smallest default burst: 64 KiB, one socket buffer's worth, so slow rates still move in
/// sizeable splices.
pub const MIN_DEFAULT_BURST: u64 = 64 * 1024;

/// One operator's quotas and bandwidth (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Pairs not yet ended (issued, waiting or relaying).
    pub live_pairs: Option<NonZeroU64>,
    /// Pairs created in one UTC minute.
    pub pairs_per_minute: Option<NonZeroU64>,
    /// Pairs issued but not yet paired.
    pub waiting_pairs: Option<NonZeroU64>,
    /// Bytes the operator's ended pairs relayed (both directions) in one UTC day.
    pub bytes_per_day: Option<NonZeroU64>,
    /// Each direction of each of the operator's pairs.
    pub pair_bandwidth: Option<ByteRate>,
    /// All the operator's pairs together (each engine core enforces its share).
    pub operator_bandwidth: Option<ByteRate>,
}

/// Validated `quotas:` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaSettings {
    /// What every operator gets.
    pub default: QuotaLimits,
    /// Operators with their own limits (at most [`MAX_QUOTA_OPERATORS`]).
    pub operators: BTreeMap<String, QuotaLimits>,
}

impl QuotaSettings {
    /// The limits of `operator`.
    pub fn limits(&self, operator: &str) -> QuotaLimits {
        self.operators
            .get(operator)
            .copied()
            .unwrap_or(self.default)
    }
}

/// Raw `quotas:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotaSettings {
    #[serde(default)]
    default: Option<RawLimits>,
    #[serde(default)]
    operators: BTreeMap<String, RawLimits>,
}

/// Raw limits of `quotas.default` and `quotas.operators.<name>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    live_pairs: Option<u64>,
    pairs_per_minute: Option<u64>,
    waiting_pairs: Option<u64>,
    bytes_per_day: Option<u64>,
    pair_bandwidth: Option<RawBandwidth>,
    operator_bandwidth: Option<RawBandwidth>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBandwidth {
    bytes_per_second: u64,
    burst: Option<u64>,
}

fn count(raw: Option<u64>, key: &str, issues: &mut FieldIssues) -> Option<NonZeroU64> {
    let v = raw?;
    let n = NonZeroU64::new(v);
    if n.is_none() {
        issues.push(key, "must be at least 1 (leave the key out for no limit)");
    }
    n
}

fn bandwidth(raw: Option<RawBandwidth>, key: &str, issues: &mut FieldIssues) -> Option<ByteRate> {
    let raw = raw?;
    let rate = raw.bytes_per_second;
    if rate == 0 || rate > MAX_BYTES_PER_SECOND {
        issues.push(
            format!("{key}.bytes_per_second"),
            format!("must be between 1 and {MAX_BYTES_PER_SECOND}, got {rate}"),
        );
        return None;
    }
    let burst = raw
        .burst
        .unwrap_or((rate / DEFAULT_BURST_DIVISOR).max(MIN_DEFAULT_BURST));
    let min_burst = rate.div_ceil(MIN_BURST_DIVISOR);
    if burst < min_burst || burst > MAX_BURST {
        issues.push(
            format!("{key}.burst"),
            format!("must be between {min_burst} (10 ms of the rate) and {MAX_BURST}, got {burst}"),
        );
        return None;
    }
    Some(ByteRate {
        per_second: NonZeroU64::new(rate)?,
        burst: NonZeroU64::new(burst)?,
    })
}

/// `raw` over `base`: each key given replaces the base's.
fn limits(
    raw: RawLimits,
    base: QuotaLimits,
    prefix: &str,
    issues: &mut FieldIssues,
) -> QuotaLimits {
    let key = |k: &str| format!("{prefix}.{k}");
    let or = |v: Option<NonZeroU64>, given: bool, b: Option<NonZeroU64>| if given { v } else { b };
    QuotaLimits {
        live_pairs: or(
            count(raw.live_pairs, &key("live_pairs"), issues),
            raw.live_pairs.is_some(),
            base.live_pairs,
        ),
        pairs_per_minute: or(
            count(raw.pairs_per_minute, &key("pairs_per_minute"), issues),
            raw.pairs_per_minute.is_some(),
            base.pairs_per_minute,
        ),
        waiting_pairs: or(
            count(raw.waiting_pairs, &key("waiting_pairs"), issues),
            raw.waiting_pairs.is_some(),
            base.waiting_pairs,
        ),
        bytes_per_day: or(
            count(raw.bytes_per_day, &key("bytes_per_day"), issues),
            raw.bytes_per_day.is_some(),
            base.bytes_per_day,
        ),
        pair_bandwidth: bandwidth(raw.pair_bandwidth, &key("pair_bandwidth"), issues)
            .or(base.pair_bandwidth),
        operator_bandwidth: bandwidth(raw.operator_bandwidth, &key("operator_bandwidth"), issues)
            .or(base.operator_bandwidth),
    }
}

impl TryFrom<RawQuotaSettings> for QuotaSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawQuotaSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let default = limits(
            raw.default.unwrap_or_default(),
            QuotaLimits::default(),
            "default",
            &mut issues,
        );
        if raw.operators.len() > MAX_QUOTA_OPERATORS {
            issues.push(
                "operators",
                format!(
                    "at most {MAX_QUOTA_OPERATORS} operators, got {}",
                    raw.operators.len()
                ),
            );
        }
        let mut operators = BTreeMap::new();
        for (name, raw) in raw.operators {
            let mut name_issues = FieldIssues::default();
            super::super::settings::check_name(&name, &mut name_issues);
            if !name_issues.is_empty() {
                issues.push(format!("operators.{name}"), "is not an operator name");
            }
            let l = limits(raw, default, &format!("operators.{name}"), &mut issues);
            operators.insert(name, l);
        }
        if issues.is_empty() {
            Ok(Self { default, operators })
        } else {
            Err(issues)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<QuotaSettings, FieldIssues> {
        QuotaSettings::try_from(serde_json::from_value::<RawQuotaSettings>(v).unwrap())
    }

    #[test]
    fn defaults_overrides_and_bandwidth_bursts() {
        assert_eq!(parse(json!({})).unwrap(), QuotaSettings::default());
        let s = parse(json!({
            "default": {"live_pairs": 5, "waiting_pairs": 2,
                        "pair_bandwidth": {"bytes_per_second": 125000}},
            "operators": {"hd-1": {"live_pairs": 50, "operator_bandwidth":
                                   {"bytes_per_second": 1000000000, "burst": 20000000}}}
        }))
        .unwrap();
        let d = s.limits("anyone");
        assert_eq!(d.live_pairs.map(NonZeroU64::get), Some(5));
        assert_eq!(d.pairs_per_minute, None);
        let pb = d.pair_bandwidth.unwrap();
        assert_eq!(
            pb.burst.get(),
            MIN_DEFAULT_BURST,
            "20 ms of 125 kB/s is below 64 KiB"
        );
        let h = s.limits("hd-1");
        assert_eq!(h.live_pairs.map(NonZeroU64::get), Some(50), "replaced");
        assert_eq!(h.waiting_pairs.map(NonZeroU64::get), Some(2), "inherited");
        assert_eq!(h.pair_bandwidth, d.pair_bandwidth, "inherited");
        assert_eq!(h.operator_bandwidth.unwrap().burst.get(), 20_000_000);
        let big =
            parse(json!({"default": {"pair_bandwidth": {"bytes_per_second": 625000000}}})).unwrap();
        assert_eq!(
            big.default.pair_bandwidth.unwrap().burst.get(),
            12_500_000,
            "20 ms"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (bad, key) in [
            (json!({"default": {"live_pairs": 0}}), "default.live_pairs"),
            (
                json!({"default": {"pair_bandwidth": {"bytes_per_second": 0}}}),
                "default.pair_bandwidth.bytes_per_second",
            ),
            (
                json!({"operators": {"hd-1": {"operator_bandwidth":
                    {"bytes_per_second": 100000, "burst": 999}}}}),
                "operators.hd-1.operator_bandwidth.burst",
            ),
            (json!({"operators": {"a b": {}}}), "operators.a b"),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert!(format!("{e:?}").contains(key), "{bad}: {e:?}");
        }
        assert!(
            serde_json::from_value::<RawQuotaSettings>(json!({"default": {"pairs": 1}})).is_err(),
            "unknown keys are refused"
        );
    }
}

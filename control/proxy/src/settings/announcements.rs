//! `announcements:` of the public and the private proxy (Tandem addition): how many domains one
//! operator may hold and how long a timed announcement may last. Every key is optional.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;

use tandem_settings::convert::seconds;
use tandem_settings::error::FieldIssues;

/// Default `per_operator_quota`: 1,024 domains held by one operator at once. One operator can
/// then hold at most 1/64 of a table (see [`MAX_ANNOUNCEMENT_QUOTA`]), so a few misbehaving
/// operators cannot fill it for everyone.
pub const DEFAULT_ANNOUNCEMENT_QUOTA: usize = 1024;
/// Largest `per_operator_quota`: 65,536, the most entries an announcement table holds (its
/// global bound, `proxy::announcements::MAX_ANNOUNCEMENTS`).
pub const MAX_ANNOUNCEMENT_QUOTA: usize = 65_536;
/// Default `max_lifetime` (seconds): 7 days, the original's bound ("timed announcements need to
/// expire in 7 days or less"); its clients (iris-client) announce with `now + 1 week`.
pub const DEFAULT_MAX_LIFETIME_SECS: f64 = 7.0 * 86_400.0;
/// Bounds of `max_lifetime` (seconds): 1 minute to 366 days.
const LIFETIME_BOUNDS: (f64, f64) = (60.0, 366.0 * 86_400.0);

/// Validated `announcements:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnouncementSettings {
    /// Most domains one operator (public proxy: the announcing operator; private proxy: the
    /// tenant calling `announceConnection`) may hold at once (default 1,024, at most 65,536).
    pub per_operator_quota: NonZeroUsize,
    /// Furthest ahead a timed announcement's `expires_at` may lie (default 7 days).
    pub max_lifetime: Duration,
}

impl Default for AnnouncementSettings {
    fn default() -> Self {
        Self {
            per_operator_quota: NonZeroUsize::new(DEFAULT_ANNOUNCEMENT_QUOTA)
                .unwrap_or(NonZeroUsize::MIN),
            max_lifetime: Duration::from_secs_f64(DEFAULT_MAX_LIFETIME_SECS),
        }
    }
}

/// Raw `announcements:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnouncementSettings {
    per_operator_quota: Option<u64>,
    max_lifetime: Option<f64>,
}

impl TryFrom<RawAnnouncementSettings> for AnnouncementSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawAnnouncementSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let mut out = Self::default();
        if let Some(q) = raw.per_operator_quota {
            match usize::try_from(q).ok().and_then(NonZeroUsize::new) {
                Some(q) if q.get() <= MAX_ANNOUNCEMENT_QUOTA => out.per_operator_quota = q,
                _ => issues.push(
                    "per_operator_quota",
                    format!("must be between 1 and {MAX_ANNOUNCEMENT_QUOTA}, got {q}"),
                ),
            }
        }
        if let Some(raw) = raw.max_lifetime {
            let (min, max) = LIFETIME_BOUNDS;
            if let Some(d) = seconds(raw, "max_lifetime", min, max, &mut issues) {
                out.max_lifetime = d;
            }
        }
        if issues.is_empty() {
            Ok(out)
        } else {
            Err(issues)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<AnnouncementSettings, FieldIssues> {
        AnnouncementSettings::try_from(
            serde_json::from_value::<RawAnnouncementSettings>(v).unwrap(),
        )
    }

    #[test]
    fn defaults_bounds_and_errors() {
        let d = parse(serde_json::json!({})).unwrap();
        assert_eq!(d, AnnouncementSettings::default());
        assert_eq!(d.per_operator_quota.get(), 1024);
        assert_eq!(d.max_lifetime, Duration::from_secs(7 * 86_400));
        let s = parse(serde_json::json!({"per_operator_quota": 10, "max_lifetime": 3600})).unwrap();
        assert_eq!(s.per_operator_quota.get(), 10);
        assert_eq!(s.max_lifetime, Duration::from_secs(3600));
        for bad in [
            serde_json::json!({"per_operator_quota": 0}),
            serde_json::json!({"per_operator_quota": 65_537}),
            serde_json::json!({"max_lifetime": 1}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_value::<RawAnnouncementSettings>(serde_json::json!({"quota": 1}))
                .is_err(),
            "unknown keys are refused"
        );
    }
}

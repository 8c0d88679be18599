//! `public.access_log:` (Tandem addition): one JSON line per ended pair, written by the control
//! plane from the engine's events (see [`crate::access_log`]).

use std::num::NonZeroU64;
use std::path::PathBuf;

use serde::Deserialize;
use tandem_settings::error::FieldIssues;

/// Largest `blur_seconds` accepted (a day): coarser than that says nothing about usage at all.
pub const MAX_BLUR_SECONDS: u64 = 86_400;

/// A validated `access_log:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// Where lines are appended; `None` writes them to stdout.
    pub file: Option<PathBuf>,
    /// Privacy: when set, times are rounded to this many seconds, durations to whole seconds,
    /// byte counts up to a power of two, and sources lose their ports (as magic-wormhole's
    /// transit relay's `--blur-usage` does).
    pub blur_seconds: Option<NonZeroU64>,
}

/// Raw `access_log:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLogSettings {
    file: Option<String>,
    blur_seconds: Option<u64>,
}

impl TryFrom<RawAccessLogSettings> for AccessLogSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawAccessLogSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let file = match raw.file.as_deref() {
            None | Some("-") => None,
            Some("") => {
                issues.push("file", "empty path (omit the key, or \"-\", for stdout)");
                None
            }
            Some(path) => Some(PathBuf::from(path)),
        };
        let blur_seconds = match raw.blur_seconds {
            None => None,
            Some(secs) if (1..=MAX_BLUR_SECONDS).contains(&secs) => NonZeroU64::new(secs),
            Some(secs) => {
                issues.push(
                    "blur_seconds",
                    format!("must be between 1 and {MAX_BLUR_SECONDS}, got {secs}"),
                );
                None
            }
        };
        if issues.is_empty() {
            Ok(Self { file, blur_seconds })
        } else {
            Err(issues)
        }
    }
}

//! The `serving:` block every listener's settings may carry (`jsonrpc_server`, `grpc_server`,
//! the proxy's `control`): overrides of the serving kit's admission policy and deadlines. Every
//! key is optional; an absent key keeps the documented default of [`tandem_types::serving_config`].

use std::num::{NonZeroU32, NonZeroUsize};

use serde::Deserialize;

use super::convert::seconds;
use super::error::FieldIssues;
use tandem_types::{Rate, ServingConfig};

/// The most connections one listener may be set to hold (the open-file limit must cover all
/// listeners of a process together).
pub const MAX_MAX_CONNECTIONS: u64 = 100_000;
/// Deadlines are between this many seconds...
const MIN_SECONDS: f64 = 0.05;
/// ...and this many.
const MAX_SECONDS: f64 = 86_400.0;

/// Raw `serving:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServingSettings {
    max_connections: Option<u64>,
    per_source_connections: Option<u64>,
    /// New connections per second per source; 0 turns the accept-rate limit off.
    per_source_rate: Option<u64>,
    per_source_burst: Option<u64>,
    handshake_timeout: Option<f64>,
    first_request_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    header_timeout: Option<f64>,
    body_timeout: Option<f64>,
    h2_max_concurrent_streams: Option<u64>,
    h2_max_header_list_bytes: Option<u64>,
    h2_keepalive_interval: Option<f64>,
    h2_keepalive_timeout: Option<f64>,
    /// Trusted networks that put a PROXY header first (see [`super::proxy_protocol`]).
    proxy_protocol_from: Option<Vec<String>>,
    /// Seconds a trusted source has to send its header.
    proxy_protocol_timeout: Option<f64>,
}

fn count(raw: Option<u64>, key: &str, max: u64, issues: &mut FieldIssues) -> Option<u64> {
    let n = raw?;
    if n == 0 || n > max {
        issues.push(key, format!("must be between 1 and {max}, got {n}"));
        return None;
    }
    Some(n)
}

fn secs(raw: Option<f64>, key: &str, issues: &mut FieldIssues) -> Option<std::time::Duration> {
    seconds(raw?, key, MIN_SECONDS, MAX_SECONDS, issues)
}

fn as_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl TryFrom<RawServingSettings> for ServingConfig {
    type Error = FieldIssues;

    fn try_from(raw: RawServingSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let mut c = ServingConfig::default();
        let a = &mut c.admission;
        if let Some(n) = count(
            raw.max_connections,
            "max_connections",
            MAX_MAX_CONNECTIONS,
            &mut issues,
        ) {
            a.max_connections = NonZeroUsize::new(usize::try_from(n).unwrap_or(usize::MAX))
                .unwrap_or(a.max_connections);
        }
        let max = u64::try_from(a.max_connections.get()).unwrap_or(u64::MAX);
        if let Some(n) = count(
            raw.per_source_connections,
            "per_source_connections",
            max,
            &mut issues,
        ) {
            a.per_source_connections =
                NonZeroU32::new(as_u32(n)).unwrap_or(a.per_source_connections);
        }
        match (raw.per_source_rate, a.per_source_rate) {
            (Some(0), _) => a.per_source_rate = None,
            (Some(r), current) if r <= 1_000_000 => {
                let burst = current.map_or(as_u32(r), |c| c.burst);
                a.per_source_rate = Some(Rate {
                    per_second: as_u32(r),
                    burst,
                });
            }
            (Some(r), _) => issues.push(
                "per_source_rate",
                format!("must be at most 1000000 (0 = off), got {r}"),
            ),
            (None, _) => {}
        }
        if let Some(b) = count(
            raw.per_source_burst,
            "per_source_burst",
            1_000_000,
            &mut issues,
        ) {
            match &mut a.per_source_rate {
                Some(rate) => rate.burst = as_u32(b),
                None => issues.push("per_source_burst", "has no effect with per_source_rate 0"),
            }
        }
        let d = &mut c.deadlines;
        let pairs = [
            (raw.handshake_timeout, "handshake_timeout", &mut d.handshake),
            (
                raw.first_request_timeout,
                "first_request_timeout",
                &mut d.first_request,
            ),
            (raw.idle_timeout, "idle_timeout", &mut d.idle),
            (raw.header_timeout, "header_timeout", &mut d.header),
            (raw.body_timeout, "body_timeout", &mut d.body),
        ];
        for (value, key, field) in pairs {
            if let Some(v) = secs(value, key, &mut issues) {
                *field = v;
            }
        }
        let h = &mut c.http2;
        if let Some(n) = count(
            raw.h2_max_concurrent_streams,
            "h2_max_concurrent_streams",
            10_000,
            &mut issues,
        ) {
            h.max_concurrent_streams = as_u32(n);
        }
        if let Some(n) = count(
            raw.h2_max_header_list_bytes,
            "h2_max_header_list_bytes",
            16 << 20,
            &mut issues,
        ) {
            h.max_header_list_bytes = as_u32(n);
        }
        if let Some(v) = secs(
            raw.h2_keepalive_interval,
            "h2_keepalive_interval",
            &mut issues,
        ) {
            h.keepalive_interval = v;
        }
        if let Some(v) = secs(
            raw.h2_keepalive_timeout,
            "h2_keepalive_timeout",
            &mut issues,
        ) {
            h.keepalive_timeout = v;
        }
        c.proxy_protocol = super::proxy_protocol::proxy_protocol(
            raw.proxy_protocol_from,
            raw.proxy_protocol_timeout,
            &mut issues,
        );
        issues.into_result(c)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::convert::convert;

    #[test]
    fn absent_keys_keep_the_defaults() {
        let c: ServingConfig = convert::<RawServingSettings, _>(&json!({})).unwrap();
        assert_eq!(c, ServingConfig::default());
    }

    #[test]
    fn keys_override_and_zero_rate_turns_the_limit_off() {
        let c: ServingConfig = convert::<RawServingSettings, _>(&json!({
            "max_connections": 10, "per_source_connections": 2, "per_source_rate": 5,
            "per_source_burst": 7, "idle_timeout": 1.5, "h2_max_concurrent_streams": 8
        }))
        .unwrap();
        assert_eq!(c.admission.max_connections.get(), 10);
        assert_eq!(c.admission.per_source_connections.get(), 2);
        assert_eq!(
            c.admission.per_source_rate,
            Some(Rate {
                per_second: 5,
                burst: 7
            })
        );
        assert_eq!(c.deadlines.idle, std::time::Duration::from_millis(1500));
        assert_eq!(c.http2.max_concurrent_streams, 8);
        let off: ServingConfig =
            convert::<RawServingSettings, _>(&json!({"per_source_rate": 0})).unwrap();
        assert_eq!(off.admission.per_source_rate, None);
        let proxied: ServingConfig = convert::<RawServingSettings, _>(&json!({
            "proxy_protocol_from": ["10.0.0.0/8", "::1"], "proxy_protocol_timeout": 2
        }))
        .unwrap();
        let p = proxied.proxy_protocol.unwrap();
        assert!(p.trusts("10.1.2.3".parse().unwrap()) && p.trusts("::1".parse().unwrap()));
        assert_eq!(p.deadline, std::time::Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_their_keys() {
        let issues = convert::<RawServingSettings, ServingConfig>(&json!({
            "max_connections": 0, "idle_timeout": -1, "per_source_connections": 5000,
            "bogus": 1
        }))
        .unwrap_err();
        let text = format!("{issues:?}");
        assert!(text.contains("bogus"), "{text}");
        let issues = convert::<RawServingSettings, ServingConfig>(&json!({
            "max_connections": 0, "idle_timeout": -1, "per_source_connections": 5000
        }))
        .unwrap_err();
        let keys: Vec<&str> = issues.0.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"max_connections"), "{keys:?}");
        assert!(keys.contains(&"idle_timeout"), "{keys:?}");
        assert!(keys.contains(&"per_source_connections"), "{keys:?}");
    }
}

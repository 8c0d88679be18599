//! `engine:` of the public proxy (Tandem addition): the data plane's cores, driver and bounds,
//! mapped onto [`tandem_engine::EngineConfig`]. Every key is optional; the engine's documented
//! defaults apply, and the engine's own bound checks run at load time.

use std::time::Duration;

use serde::Deserialize;
use tandem_engine::{Driver, EngineConfig};

use tandem_settings::convert::seconds;
use tandem_settings::error::FieldIssues;

/// Default time the engine lets open pairs finish after a drain starts (seconds).
pub const DEFAULT_DRAIN_GRACE_SECS: f64 = 10.0;

/// Validated `engine:` block: the engine settings (addresses and pair TTL are filled in by the
/// proxy at start from `internal_bind_address`, `tls_bind_address` and `accept_timeout`).
#[derive(Debug, Clone)]
pub struct ProxyEngineSettings {
    /// The engine configuration (addresses are placeholders until the proxy starts).
    pub config: EngineConfig,
    /// How long a drain (SIGTERM) lets pairs finish before closing them.
    pub drain_grace: Duration,
}

impl Default for ProxyEngineSettings {
    fn default() -> Self {
        Self {
            config: EngineConfig::default(),
            drain_grace: Duration::from_secs_f64(DEFAULT_DRAIN_GRACE_SECS),
        }
    }
}

/// `cores:` either a count (`4` → CPUs 0..4) or a list of CPU ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCores {
    /// Run on CPUs `0..n`.
    Count(u64),
    /// Run on exactly these CPUs.
    List(Vec<usize>),
}

/// Raw `engine:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyEngineSettings {
    cores: Option<RawCores>,
    pin: Option<bool>,
    driver: Option<String>,
    pipe_size: Option<usize>,
    pipe_pool_size: Option<usize>,
    copy_buf_size: Option<usize>,
    max_pairs_per_core: Option<usize>,
    max_conns_per_core: Option<usize>,
    max_waiting_per_core: Option<usize>,
    hello_max_bytes: Option<usize>,
    token_deadline: Option<f64>,
    hello_deadline: Option<f64>,
    idle_timeout: Option<f64>,
    /// Seconds a pair must be quiet before it parks (0: never park).
    park_after: Option<f64>,
    keepalive: Option<f64>,
    drain_grace: Option<f64>,
    sni_pairs_per_source: Option<u32>,
    sni_pairs_per_domain: Option<u32>,
    /// Trusted networks that put a PROXY header first on the data ports.
    proxy_protocol_from: Option<Vec<String>>,
    /// Seconds a trusted source has to send its header.
    proxy_protocol_timeout: Option<f64>,
}

/// Largest CPU count accepted for `cores: <n>` (one worker thread per core).
const MAX_CORES: u64 = 1024;

impl TryFrom<RawProxyEngineSettings> for ProxyEngineSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawProxyEngineSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let mut config = EngineConfig {
            release_memory: Some(crate::memory::release_memory),
            ..EngineConfig::default()
        };
        match raw.cores {
            Some(RawCores::Count(n)) if (1..=MAX_CORES).contains(&n) => {
                config.cores = Some((0..n as usize).collect());
            }
            Some(RawCores::Count(n)) => issues.push(
                "cores",
                format!("must be between 1 and {MAX_CORES}, got {n}"),
            ),
            Some(RawCores::List(list)) => config.cores = Some(list),
            None => {}
        }
        if let Some(pin) = raw.pin {
            config.pin = pin;
        }
        match raw.driver.as_deref() {
            None | Some("auto") => config.driver = Driver::Auto,
            Some("io_uring") => config.driver = Driver::IoUring,
            Some("epoll") | Some("legacy") => config.driver = Driver::Legacy,
            Some(other) => issues.push(
                "driver",
                format!("{other:?} is not one of auto, io_uring, epoll"),
            ),
        }
        let set = |target: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *target = v;
            }
        };
        set(&mut config.pipe_size, raw.pipe_size);
        set(&mut config.pipe_pool_size, raw.pipe_pool_size);
        set(&mut config.copy_buf_size, raw.copy_buf_size);
        set(&mut config.max_pairs_per_core, raw.max_pairs_per_core);
        set(&mut config.max_conns_per_core, raw.max_conns_per_core);
        set(&mut config.max_waiting_per_core, raw.max_waiting_per_core);
        set(&mut config.hello_max_bytes, raw.hello_max_bytes);
        // Engine-wide budgets of open SNI pairs (each core holds its share); 0 is refused by
        // the engine's own check below.
        if let Some(n) = raw.sni_pairs_per_source {
            config.sni_pairs_per_source = n;
        }
        if let Some(n) = raw.sni_pairs_per_domain {
            config.sni_pairs_per_domain = n;
        }
        config.proxy_protocol = tandem_settings::proxy_protocol::proxy_protocol(
            raw.proxy_protocol_from,
            raw.proxy_protocol_timeout,
            &mut issues,
        );
        let mut secs = |raw: Option<f64>, key: &str, min: f64, max: f64| {
            raw.and_then(|s| seconds(s, key, min, max, &mut issues))
        };
        if let Some(d) = secs(raw.token_deadline, "token_deadline", 0.01, 60.0) {
            config.token_deadline = d;
        }
        if let Some(d) = secs(raw.hello_deadline, "hello_deadline", 0.01, 60.0) {
            config.hello_deadline = d;
        }
        // 0 turns the idle timeout / keepalive off.
        if let Some(d) = secs(raw.idle_timeout, "idle_timeout", 0.0, 86_400.0) {
            config.idle_timeout = (!d.is_zero()).then_some(d);
        }
        // 0 turns parking off; at most an hour (a pair quiet longer is idle, not parked).
        if let Some(d) = secs(raw.park_after, "park_after", 0.0, 3600.0) {
            config.park_after = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = secs(raw.keepalive, "keepalive", 0.0, 86_400.0) {
            config.keepalive = (!d.is_zero()).then_some(d);
        }
        let drain_grace = secs(raw.drain_grace, "drain_grace", 0.0, 3600.0)
            .unwrap_or(Duration::from_secs_f64(DEFAULT_DRAIN_GRACE_SECS));
        if let Err(tandem_engine::EngineError::Config { key, reason }) = config.validate() {
            issues.push(key, reason);
        }
        issues.into_result(Self {
            config,
            drain_grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use tandem_settings::convert::convert;

    #[test]
    fn engine_keys_map_onto_the_engine_config_and_bounds_are_checked() {
        let s: ProxyEngineSettings = convert::<RawProxyEngineSettings, _>(&json!({
            "cores": 2, "driver": "epoll", "pipe_size": 65536, "max_pairs_per_core": 10,
            "idle_timeout": 0, "drain_grace": 1.5,
            "sni_pairs_per_source": 8, "sni_pairs_per_domain": 100, "park_after": 0.5
        }))
        .unwrap();
        assert_eq!(s.config.park_after, Some(Duration::from_millis(500)));
        assert_eq!(s.config.sni_pairs_per_source, 8);
        assert_eq!(s.config.sni_pairs_per_domain, 100);
        assert_eq!(s.config.cores, Some(vec![0, 1]));
        assert_eq!(s.config.driver, Driver::Legacy);
        assert_eq!(s.config.pipe_size, 65536);
        assert_eq!(s.config.max_pairs_per_core, 10);
        assert_eq!(s.config.idle_timeout, None);
        assert_eq!(s.drain_grace, Duration::from_millis(1500));
        let e = convert::<RawProxyEngineSettings, ProxyEngineSettings>(&json!({
            "driver": "kqueue", "copy_buf_size": 10
        }))
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["driver", "copy_buf_size"]);
        let defaults = convert::<RawProxyEngineSettings, ProxyEngineSettings>(&json!({})).unwrap();
        assert_eq!(defaults.config.sni_pairs_per_source, 64);
        assert_eq!(defaults.config.sni_pairs_per_domain, 512);
        assert_eq!(defaults.config.park_after, Some(Duration::from_secs(2)));
        let never = convert::<RawProxyEngineSettings, ProxyEngineSettings>(&json!({
            "park_after": 0
        }))
        .unwrap();
        assert_eq!(never.config.park_after, None);
        assert!(
            convert::<RawProxyEngineSettings, ProxyEngineSettings>(&json!({"park_after": -1}))
                .is_err()
        );
        assert!(
            convert::<RawProxyEngineSettings, ProxyEngineSettings>(
                &json!({"sni_pairs_per_domain": 0})
            )
            .is_err()
        );
        assert!(
            convert::<RawProxyEngineSettings, ProxyEngineSettings>(&json!({"pipes": 1})).is_err()
        );
    }

    #[test]
    fn proxy_protocol_keys_map_onto_the_engine_config() {
        let s: ProxyEngineSettings = convert::<RawProxyEngineSettings, _>(&json!({
            "proxy_protocol_from": ["10.0.0.0/8", "fd00::/8"], "proxy_protocol_timeout": 1
        }))
        .unwrap();
        let p = s.config.proxy_protocol.unwrap();
        assert!(p.trusts("10.0.0.1".parse().unwrap()) && p.trusts("fd00::1".parse().unwrap()));
        assert!(!p.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(p.deadline, Duration::from_secs(1));
        let e = convert::<RawProxyEngineSettings, ProxyEngineSettings>(&json!({
            "proxy_protocol_from": ["10.0.0.0/33"]
        }))
        .unwrap_err();
        assert_eq!(e.0[0].0, "proxy_protocol_from[0]");
    }
}

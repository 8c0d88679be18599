//! Reloading `sd` without a restart (`SIGHUP`): the JSON-RPC listener's certificate, key and
//! client CA bundle, `limits.max_records_per_submit` and `log_level`. [`prepare`] is also what
//! `sd check-settings` runs, so the check and the reload refuse the same settings with the same
//! words. Keys that only a restart changes (addresses, the datastore, the directory's CA files,
//! the other limits) are reported as such and left as they are.

use std::sync::Arc;

use rustls::ServerConfig;
use tandem_net::reload::{ReloadError, apply_log_level, check_log_level};
use tandem_net::tls::ServerTls;
use tandem_settings::sd::SdSettings;
use tracing::warn;

use super::DirectoryService;

/// Settings checked and built into what serving them needs.
#[derive(Debug)]
pub struct Prepared {
    /// The settings.
    pub settings: SdSettings,
    tls: Option<Arc<ServerConfig>>,
}

/// Checks `settings` and builds everything a start or a reload installs: the TLS config (reading
/// the certificate, key and CA files), the log directives. Installs nothing.
pub fn prepare(settings: SdSettings) -> Result<Prepared, ReloadError> {
    let tls = tandem_net::http::server_tls(&settings.jsonrpc_server)
        .map_err(ReloadError::tls("jsonrpc_server.tls"))?;
    check_log_level(settings.log_level.as_deref())?;
    Ok(Prepared { settings, tls })
}

impl Prepared {
    /// The listener's TLS config, replaceable by later reloads (`None`: plain HTTP).
    pub fn server_tls(&self) -> Option<ServerTls> {
        self.tls.clone().map(ServerTls::new)
    }
}

/// What a running `sd` lets a reload replace.
pub struct Live {
    /// The settings the process runs with now.
    current: std::sync::Mutex<SdSettings>,
    tls: Option<ServerTls>,
    service: Arc<DirectoryService>,
}

impl Live {
    /// The live parts of a server started from `settings`.
    pub fn new(
        settings: SdSettings,
        tls: Option<ServerTls>,
        service: Arc<DirectoryService>,
    ) -> Self {
        Self {
            current: std::sync::Mutex::new(settings),
            tls,
            service,
        }
    }

    /// Installs `next` (already [`prepare`]d); refuses, changing nothing, a change only a restart
    /// makes (TLS switched on or off). Returns the keys it applied.
    pub fn apply(&self, next: Prepared) -> Result<Vec<String>, ReloadError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let tls = match (&self.tls, next.tls) {
            (Some(live), Some(config)) => Some((live, config)),
            (None, None) => None,
            _ => {
                return Err(ReloadError::invalid(
                    "jsonrpc_server.tls",
                    "switching TLS on or off needs a restart",
                ));
            }
        };
        let next = next.settings;
        let restart_only = restart_only_changes(&current, &next);
        if !restart_only.is_empty() {
            warn!(keys = ?restart_only, "changed settings that take effect only after a restart");
        }
        let mut applied = Vec::new();
        if let Some((live, config)) = tls {
            live.replace(config);
            applied.push("jsonrpc_server.tls".to_owned());
        }
        let max = usize::try_from(next.limits.max_records_per_submit).unwrap_or(usize::MAX);
        self.service.set_max_records_per_submit(max);
        applied.push("limits.max_records_per_submit".to_owned());
        apply_log_level(next.log_level.as_deref());
        applied.push("log_level".to_owned());
        *current = next;
        Ok(applied)
    }
}

/// The keys that differ between `a` and `b` and that only a restart applies.
fn restart_only_changes(a: &SdSettings, b: &SdSettings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let server = (&a.jsonrpc_server, &b.jsonrpc_server);
    if server.0.bind_address != server.1.bind_address {
        keys.push("jsonrpc_server.bind_address");
    }
    if server.0.tcp_rate_limits != server.1.tcp_rate_limits {
        keys.push("jsonrpc_server.tcp_rate_limits");
    }
    if a.directory != b.directory {
        keys.push("directory");
    }
    if a.metrics.as_ref().map(|m| &m.bind_address) != b.metrics.as_ref().map(|m| &m.bind_address) {
        keys.push("metrics");
    }
    if a.limits.max_body_bytes != b.limits.max_body_bytes {
        keys.push("limits.max_body_bytes");
    }
    if a.limits.request_timeout != b.limits.request_timeout {
        keys.push("limits.request_timeout");
    }
    keys
}

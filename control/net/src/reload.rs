//! Reload without restart: on `SIGHUP` (and on request, e.g. `proxy ctl reload`) a program
//! re-reads its settings, validates and builds everything a reload changes (TLS configs, lists,
//! limits, the log filter) and only then installs it all; on any error nothing changes. Each
//! program supplies its own [`ReloadFn`] (the same preparation `check-settings` runs); this
//! module runs it one at a time, logs the outcome with the file and key at fault, and counts it
//! in `tandem_reload_total{result="ok|error"}`. The service manager is told `RELOADING=1` when a
//! reload starts and `READY=1` when it ends ([`tandem_serving::notify`]).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tandem_serving::{Notice, Shutdown, notify};
use tandem_settings::SettingsError;
use tracing::{error, info, warn};

use crate::tls::TlsError;

/// Why a reload (or `check-settings`) refused the settings. Every variant names the file and/or
/// the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The settings files do not load or convert (the error lists each file and key).
    #[error("{0}")]
    Settings(#[from] SettingsError),
    /// A TLS block's files do not build a config (the error names the file).
    #[error("{key}: {source}")]
    Tls {
        /// The settings key of the TLS block, e.g. `jsonrpc_server.tls`.
        key: String,
        /// What is wrong (names the certificate, key or CA file).
        #[source]
        source: TlsError,
    },
    /// A value is valid settings but cannot be applied (a bad `log_level`), or changes something
    /// only a restart can change.
    #[error("{key}: {reason}")]
    Invalid {
        /// The settings key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The reload task could not run (the runtime is shutting down).
    #[error("reload task failed: {0}")]
    Task(String),
}

impl ReloadError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Settings(_) => "settings",
            Self::Tls { .. } => "tls",
            Self::Invalid { .. } => "invalid",
            Self::Task(_) => "task",
        }
    }

    /// A TLS error of the block at `key`.
    pub fn tls(key: impl Into<String>) -> impl FnOnce(TlsError) -> Self {
        let key = key.into();
        move |source| Self::Tls { key, source }
    }

    /// An unusable value at `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Validates the `log_level` key (`None` is valid: logging returns to its start-up level).
pub fn check_log_level(level: Option<&str>) -> Result<(), ReloadError> {
    match level {
        Some(l) => crate::telemetry::parse_level(l)
            .map(drop)
            .map_err(|reason| ReloadError::invalid("log_level", reason)),
        None => Ok(()),
    }
}

/// Installs a `log_level` already checked by [`check_log_level`].
pub fn apply_log_level(level: Option<&str>) {
    if let Err(e) = crate::telemetry::set_level(level) {
        // Checked before anything was installed; a failure here is the subscriber's.
        warn!(error = %e, "log level not changed");
    }
}

/// One reload: re-read the settings, validate and build everything, then install it; returns
/// what it changed (for the log and `proxy ctl reload`). Blocking (reads files): it runs on the
/// blocking pool.
pub type ReloadFn = Arc<dyn Fn() -> Result<Vec<String>, ReloadError> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `tandem_reload_total{result}`. Clones share the counters.
#[derive(Clone, Debug, Default)]
pub struct ReloadMetrics {
    total: Family<ResultLabel, Counter>,
}

impl ReloadMetrics {
    /// New counters registered in `registry` as `tandem_reload_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "tandem_reload",
            "Settings reloads (SIGHUP, ctl reload) by result (ok, error)",
            m.total.clone(),
        );
        // Both series from the start, so a dashboard sees 0 errors rather than no data.
        for result in ["ok", "error"] {
            let _ = m.total.get_or_create(&ResultLabel { result });
        }
        m
    }

    /// Reloads counted with `result` (`ok` or `error`).
    pub fn count(&self, result: &'static str) -> u64 {
        self.total.get_or_create(&ResultLabel { result }).get()
    }

    fn inc(&self, result: &'static str) {
        self.total.get_or_create(&ResultLabel { result }).inc();
    }
}

/// Runs a program's [`ReloadFn`], one reload at a time. Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    reload: ReloadFn,
    metrics: ReloadMetrics,
    /// Serialises reloads: a second `SIGHUP` during a reload waits for the first.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader running `reload`, counting into `metrics`.
    pub fn new(reload: ReloadFn, metrics: ReloadMetrics) -> Self {
        Self {
            reload,
            metrics,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Reloads now (`trigger` says why, for the log); logs and counts the outcome.
    pub async fn reload(&self, trigger: &'static str) -> Result<Vec<String>, ReloadError> {
        let _running = self.running.lock().await;
        // The service manager (Type=notify) sees the reload start and end, whatever its result:
        // a refused reload leaves the program serving as before.
        notify(&[Notice::reloading_now()]);
        let reload = self.reload.clone();
        let result = tokio::task::spawn_blocking(move || reload())
            .await
            .unwrap_or_else(|e| Err(ReloadError::Task(e.to_string())));
        notify(&[Notice::Ready]);
        match &result {
            Ok(changed) => {
                self.metrics.inc("ok");
                info!(trigger, changed = ?changed, "settings reloaded");
            }
            Err(e) => {
                self.metrics.inc("error");
                // One log line however many issues the error lists.
                let error = one_line(&e.to_string());
                error!(trigger, kind = e.kind(), %error, "settings reload refused; nothing changed");
            }
        }
        result
    }

    /// Reloads on every `SIGHUP` until `shutdown`. The handler is installed when this is called
    /// (inside the runtime), before the returned future first runs, so a SIGHUP sent once the
    /// caller has logged that it serves is never lost (nor, by default, fatal).
    pub fn on_sighup(self, mut shutdown: Shutdown) -> impl std::future::Future<Output = ()> {
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        async move {
            let mut hup = match hup {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGHUP; reload is unavailable");
                    return;
                }
            };
            loop {
                tokio::select! {
                    () = shutdown.triggered() => return,
                    got = hup.recv() => {
                        if got.is_none() {
                            return;
                        }
                        // The outcome is logged and counted by `reload`.
                        let _ = self.reload("SIGHUP").await;
                    }
                }
            }
        }
    }
}

/// `text` with its line breaks (a settings error lists one issue per line) as `; `.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn outcomes_are_counted_by_result() {
        let fail = Arc::new(AtomicBool::new(false));
        let f = fail.clone();
        let reload: ReloadFn = Arc::new(move || {
            if f.load(Ordering::Relaxed) {
                Err(ReloadError::invalid("log_level", "bad"))
            } else {
                Ok(vec!["tls".into()])
            }
        });
        let mut registry = Registry::default();
        let metrics = ReloadMetrics::register(&mut registry);
        let reloader = Reloader::new(reload, metrics.clone());
        assert_eq!(reloader.reload("test").await.unwrap(), vec!["tls"]);
        fail.store(true, Ordering::Relaxed);
        let err = reloader.reload("test").await.unwrap_err();
        assert_eq!(err.to_string(), "log_level: bad");
        assert_eq!((metrics.count("ok"), metrics.count("error")), (1, 1));
        let text = crate::metrics::render(&registry);
        assert!(
            text.contains("tandem_reload_total{result=\"error\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_multi_line_error_is_logged_on_one_line() {
        assert_eq!(
            one_line("2 issue(s)\n  a: x\n  b: y"),
            "2 issue(s); a: x; b: y"
        );
    }

    #[test]
    fn a_bad_log_level_names_the_key() {
        let err = check_log_level(Some("tandem=loud")).unwrap_err();
        assert!(err.to_string().starts_with("log_level: "), "{err}");
        assert!(check_log_level(None).is_ok());
    }
}

//! Flags and helpers every binary shares: logging flags, the version line, and the shutdown signal.

use clap::Args;

use crate::telemetry::{self, LogFormat};

/// The version with the commit it was built from (set by `control/build.rs`).
pub const VERSION: &str = env!("TANDEM_VERSION");

/// Logging flags of every binary.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log level or per-module directives (e.g. `info,tandem_sd=debug`); `RUST_LOG` wins.
    #[arg(long, global = true, default_value = "info")]
    pub level: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub format: LogFormat,
}

impl LogArgs {
    /// Installs logging; returns a message when the directives are bad.
    pub fn init(&self) -> Result<(), String> {
        telemetry::init(&self.level, self.format)
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

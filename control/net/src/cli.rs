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

/// Resolves when the process gets SIGINT or SIGTERM. The handlers are installed when this is
/// called (inside the runtime), not when the future is first polled: a program that calls it
/// before it tells the service manager `READY=1` is never killed by a SIGTERM sent right after
/// (the default action) before its shutdown path runs.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

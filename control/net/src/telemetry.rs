//! Logging set-up shared by the binaries: tracing to stderr, human or JSON, levels from `--level`
//! or `RUST_LOG` (per-module directives such as `tandem_sd=debug` work in both). The level filter
//! sits behind a reload layer, so a settings reload can change it ([`set_level`]) without a
//! restart.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event (for log shippers).
    Json,
}

/// The installed filter's reload handle and the directives it started with (what a reload
/// returns to when the settings name no `log_level`).
struct Installed {
    handle: reload::Handle<EnvFilter, Registry>,
    startup: String,
}

/// Set once by [`init`]; the process has one global subscriber.
static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Parses log directives (`info`, `warn,tandem_sd=debug`); the error says why they do not parse.
pub fn parse_level(directives: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(directives).map_err(|e| format!("invalid log level {directives:?}: {e}"))
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `level`.
/// Returns an error text when the directives do not parse.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let startup = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => directives,
        _ => level.to_owned(),
    };
    let (filter, handle) = reload::Layer::new(parse_level(&startup)?);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (human, json) = match format {
        LogFormat::Human => (
            Some(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)),
            None,
        ),
        LogFormat::Json => (None, Some(fmt::layer().json().with_writer(std::io::stderr))),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .try_init()
        .map_err(|e| format!("logging already initialised: {e}"))?;
    // `try_init` succeeded, so this is the first and only install.
    let _ = INSTALLED.set(Installed { handle, startup });
    Ok(())
}

/// Replaces the level filter: `Some(directives)` from the settings' `log_level`, `None` returns
/// to the directives logging started with. Without an installed subscriber (tests, tools) this
/// only checks the directives.
pub fn set_level(directives: Option<&str>) -> Result<(), String> {
    let Some(installed) = INSTALLED.get() else {
        return directives.map_or(Ok(()), |d| parse_level(d).map(drop));
    };
    let filter = parse_level(directives.unwrap_or(&installed.startup))?;
    installed
        .handle
        .reload(filter)
        .map_err(|e| format!("replacing the log filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_directives_are_refused_with_the_text() {
        let err = parse_level("tandem=loud").unwrap_err();
        assert!(err.contains("tandem=loud"), "{err}");
        assert!(parse_level("warn,tandem_sd=debug").is_ok());
        assert!(set_level(Some("tandem=loud")).is_err());
        assert!(set_level(None).is_ok());
    }
}

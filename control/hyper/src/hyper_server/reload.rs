//! Reloading `hyper server run` without a restart (`SIGHUP`): the TLS certificate, key and client
//! CA bundle of the `grpc_server` and `jsonrpc_server` listeners, and `log_level`. [`prepare`] is
//! also what `hyper check-settings` runs, so the check and the reload refuse the same settings
//! with the same words. Connections keep the certificates they were accepted with. Everything
//! else (channels, addresses, the directory, the gateway's caller list) takes a restart.

use std::sync::Arc;

use rustls::ServerConfig;
use tandem_net::reload::{ReloadError, apply_log_level, check_log_level};
use tandem_net::tls::{ServerTls, server_config};
use tandem_settings::hyper::ChannelKind;
use tandem_settings::{HyperSettings, SettingsError};

use crate::grpc::ALPN_H2;

/// Re-reads the settings for a reload (the same files the process started from).
pub type HyperSettingsSource = Arc<dyn Fn() -> Result<HyperSettings, SettingsError> + Send + Sync>;

/// A listener's TLS config by the kind of its channel (`grpc_server`, `jsonrpc_server`).
type ByKind<T> = Vec<(&'static str, T)>;

/// Settings checked and built into the TLS configs a reload installs.
#[derive(Debug)]
pub struct Prepared {
    /// The settings.
    pub settings: HyperSettings,
    tls: ByKind<Arc<ServerConfig>>,
}

/// Checks `settings` and builds the listeners' TLS configs (reading every certificate, key and CA
/// file) and the log directives. Installs nothing.
pub fn prepare(settings: HyperSettings) -> Result<Prepared, ReloadError> {
    let mut tls = Vec::new();
    for (i, channel) in settings.channels.iter().enumerate() {
        match &channel.kind {
            ChannelKind::GrpcServer(s) => {
                let config = server_config(&s.tls, &[ALPN_H2])
                    .map_err(ReloadError::tls(format!("channels[{i}].tls")))?;
                tls.push(("grpc_server", config));
            }
            ChannelKind::JsonRpcServer(s) => {
                let config = tandem_net::http::server_tls(&s.server)
                    .map_err(ReloadError::tls(format!("channels[{i}].tls")))?;
                if let Some(config) = config {
                    tls.push(("jsonrpc_server", config));
                }
            }
            _ => {}
        }
    }
    check_log_level(settings.log_level.as_deref())?;
    Ok(Prepared { settings, tls })
}

/// The TLS configs of a running server's listeners, replaceable by a reload.
#[derive(Debug, Clone, Default)]
pub struct LiveTls(ByKind<ServerTls>);

impl LiveTls {
    /// Registers the listener of a `kind` channel.
    pub fn add(&mut self, kind: &'static str, tls: ServerTls) {
        self.0.push((kind, tls));
    }

    /// Installs `next`, or, changing nothing, refuses a set of TLS listeners that differs from
    /// the running one (a restart adds, removes or switches TLS on a listener). Returns the keys
    /// applied.
    pub fn apply(&self, next: Prepared) -> Result<Vec<String>, ReloadError> {
        let live: Vec<&str> = self.0.iter().map(|(k, _)| *k).collect();
        let wanted: Vec<&str> = next.tls.iter().map(|(k, _)| *k).collect();
        if live != wanted {
            return Err(ReloadError::invalid(
                "channels",
                format!(
                    "the TLS listeners would change from {live:?} to {wanted:?}; that needs a restart"
                ),
            ));
        }
        let mut applied = Vec::new();
        for ((kind, live), (_, config)) in self.0.iter().zip(next.tls) {
            live.replace(config);
            applied.push(format!("{kind}.tls"));
        }
        apply_log_level(next.settings.log_level.as_deref());
        applied.push("log_level".to_owned());
        Ok(applied)
    }
}

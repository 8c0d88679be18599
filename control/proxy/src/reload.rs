//! Reloading a proxy without a restart (`SIGHUP`, `proxy ctl reload`): the JSON-RPC listener's
//! certificate, key and client CA bundle, the control listener's, the control admins and
//! `log_level`. [`prepare`] is also what `proxy check-settings` runs, so the check and the reload
//! refuse the same settings with the same words. Live pairs are untouched (the engine's data ports
//! carry no TLS of ours); connections keep the certificates they were accepted with. Everything
//! else (addresses, the engine, the datastore, the Hyper link) takes a restart.

use std::sync::Arc;

use rustls::ServerConfig;
use tandem_net::reload::{ReloadError, apply_log_level, check_log_level};
use tandem_net::tls::ServerTls;
use tandem_settings::SettingsError;
use tracing::warn;

use crate::control_service::AdminPolicy;
use crate::settings::ProxySettings;

/// Re-reads the settings for a reload (the same files the process started from).
pub type ProxySettingsSource = Arc<dyn Fn() -> Result<ProxySettings, SettingsError> + Send + Sync>;

/// The TLS configs of one block (`public:` or `private:`), built.
#[derive(Debug, Default)]
struct BlockTls {
    jsonrpc: Option<Arc<ServerConfig>>,
    control: Option<Arc<ServerConfig>>,
}

/// Settings checked and built into what a start or a reload installs.
#[derive(Debug)]
pub struct Prepared {
    /// The settings.
    pub settings: ProxySettings,
    public: BlockTls,
    private: BlockTls,
}

/// Checks `settings` and builds every TLS config of both blocks (reading each certificate, key and
/// CA file) and the log directives. Installs nothing.
pub fn prepare(settings: ProxySettings) -> Result<Prepared, ReloadError> {
    let mut public = BlockTls::default();
    if let Some(p) = &settings.public {
        public.jsonrpc = tandem_net::http::server_tls(&p.jsonrpc_server)
            .map_err(ReloadError::tls("public.jsonrpc_server.tls"))?;
        if let Some(c) = &p.control {
            let config = tandem_net::tls::server_config(&c.tls, &[tandem_net::grpc::ALPN_H2])
                .map_err(ReloadError::tls("public.control.tls"))?;
            public.control = Some(config);
        }
    }
    let mut private = BlockTls::default();
    if let Some(p) = &settings.private {
        private.jsonrpc = tandem_net::http::server_tls(&p.jsonrpc_server)
            .map_err(ReloadError::tls("private.jsonrpc_server.tls"))?;
    }
    check_log_level(settings.log_level.as_deref())?;
    Ok(Prepared {
        settings,
        public,
        private,
    })
}

/// Which block a running proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// `proxy run public`.
    Public,
    /// `proxy run private`.
    Private,
}

impl Block {
    fn key(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// What a running proxy lets a reload replace.
#[derive(Clone)]
pub struct Live {
    block: Block,
    jsonrpc: Option<ServerTls>,
    control: Option<(ServerTls, AdminPolicy)>,
}

impl Live {
    /// The live parts of a proxy serving `block`.
    pub fn new(
        block: Block,
        jsonrpc: Option<ServerTls>,
        control: Option<(ServerTls, AdminPolicy)>,
    ) -> Self {
        Self {
            block,
            jsonrpc,
            control,
        }
    }

    /// Installs `next` (already [`prepare`]d), or refuses, changing nothing, what only a restart
    /// changes (the block gone, TLS or the control service switched on or off). Returns the keys
    /// applied.
    pub fn apply(&self, next: Prepared) -> Result<Vec<String>, ReloadError> {
        let block = self.block.key();
        let (tls, admins) = match self.block {
            Block::Public => (
                next.public,
                next.settings
                    .public
                    .as_ref()
                    .and_then(|p| p.control.as_ref())
                    .map(|c| c.admins.clone()),
            ),
            Block::Private => (next.private, None),
        };
        let present = match self.block {
            Block::Public => next.settings.public.is_some(),
            Block::Private => next.settings.private.is_some(),
        };
        if !present {
            return Err(ReloadError::invalid(
                block,
                "the running block is gone; that needs a restart",
            ));
        }
        let restart = |key: &str, what: &str| {
            ReloadError::invalid(format!("{block}.{key}"), format!("{what} needs a restart"))
        };
        if self.jsonrpc.is_some() != tls.jsonrpc.is_some() {
            return Err(restart("jsonrpc_server.tls", "switching TLS on or off"));
        }
        if self.control.is_some() != tls.control.is_some() {
            return Err(restart(
                "control",
                "starting or stopping the control service",
            ));
        }
        let mut applied = Vec::new();
        if let (Some(live), Some(config)) = (&self.jsonrpc, tls.jsonrpc) {
            live.replace(config);
            applied.push(format!("{block}.jsonrpc_server.tls"));
        }
        if let (Some((live, policy)), Some(config)) = (&self.control, tls.control) {
            live.replace(config);
            applied.push(format!("{block}.control.tls"));
            let admins = admins.unwrap_or_default();
            if admins.is_empty() {
                warn!(
                    "control.admins is empty after the reload: only the directory group may administer this proxy"
                );
            }
            policy.set_names(admins);
            applied.push(format!("{block}.control.admins"));
        }
        apply_log_level(next.settings.log_level.as_deref());
        applied.push("log_level".to_owned());
        Ok(applied)
    }
}

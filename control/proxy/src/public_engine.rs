//! (Child of `public`.) The public proxy's engine: its data ports resolved from the settings,
//! started fresh or on what a previous process handed over, and the pairing endpoint peers are
//! told when `internal_endpoint` is unset.

use std::net::SocketAddr;
use std::sync::Arc;

use tandem_engine::{Engine, EngineHandle};
use tandem_net::http::RateLimit;
use tracing::info;

use super::PublicState;
use crate::error::ProxyError;
use crate::settings::PublicProxySettings;
use crate::sni::SniRouter;
use crate::upgrade::Inherited;

/// Resolves the data ports and starts the engine with `router` as its SNI resolver (on the
/// listeners and pairs of `inherited`, after a binary upgrade).
pub(super) async fn start_engine(
    settings: &PublicProxySettings,
    router: SniRouter,
    inherited: Option<&mut Inherited>,
) -> Result<
    (
        EngineHandle,
        std::sync::mpsc::Receiver<tandem_engine::PairEvent>,
    ),
    ProxyError,
> {
    let mut config = settings.engine.config.clone();
    (config.pairing_addr, config.pairing_more) = addresses(&settings.internal_bind_address).await?;
    let (tls, tls_more) = addresses(&settings.tls_bind_address).await?;
    (config.tls_addr, config.tls_more) = (Some(tls), tls_more);
    config.pair_ttl = settings.accept_timeout;
    config.accept_rates = accept_rates(&settings.tcp_rate_limits);
    let cell = router.engine_cell();
    // Binds and spawns the worker threads; returns at once.
    let (engine, events) = match inherited {
        None => Engine::start(config, Arc::new(router))?,
        Some(inh) => {
            let (engine, events, adopted) =
                Engine::start_inherited(config, Arc::new(router), &mut inh.bundle)
                    .map_err(|e| ProxyError::Settings(format!("inheriting the engine: {e}")))?;
            info!(?adopted, "engine inherited from the previous process");
            (engine, events)
        }
    };
    let _ = cell.set(engine.clone());
    Ok((engine, events))
}

/// Every distinct address a data port's `host:port` resolves to (IPv4 first, at most
/// [`tandem_serving::MAX_ADDRESSES_PER_LISTENER`]): the first, and the others the engine binds
/// on the same port.
async fn addresses(
    address: &tandem_settings::HostPort,
) -> Result<(SocketAddr, Vec<SocketAddr>), ProxyError> {
    let all = tandem_serving::plan(address, &tandem_serving::resolve(address).await?)?;
    match all.split_first() {
        Some((first, more)) => Ok((*first, more.to_vec())),
        None => Err(ProxyError::Settings(format!(
            "{address} resolves to no address"
        ))),
    }
}

/// `tcp_rate_limits` as the engine's per-source accept rates on its data ports.
fn accept_rates(limits: &[tandem_settings::TcpRateLimit]) -> Vec<tandem_engine::AcceptRate> {
    RateLimit::from_settings(limits)
        .into_iter()
        .map(|l| tandem_engine::AcceptRate {
            window: l.window,
            limit: l.limit,
        })
        .collect()
}

/// The pairing endpoint handed to peers when `internal_endpoint` is unset: the pairing bind address
/// as written (`localhost:9999`, what the original's directory entries list), or the bound address
/// when the setting names port 0 or every address.
pub(super) fn default_endpoint(bind: &tandem_settings::HostPort, bound: SocketAddr) -> String {
    let every_address = bind
        .host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if bind.port == 0 || every_address {
        bound.to_string()
    } else {
        bind.to_string()
    }
}

/// One info line with the counters an operator watches (every [`PRUNE_INTERVAL`]).
pub(super) fn log_summary(state: &PublicState) {
    let p = state.counters.snapshot();
    let engine = state.engine.stats();
    let total = |f: fn(&tandem_engine::CoreStatsSnapshot) -> u64| engine.iter().map(f).sum::<u64>();
    info!(
        pairs_requested = p.pairs_requested,
        pairs_issued = p.pairs_issued,
        pairs_cancelled = p.pairs_cancelled,
        sni_resolved = p.sni_resolved,
        sni_refused = p.sni_refused,
        live_pairs = total(|c| c.live_pairs),
        waiting = total(|c| c.waiting),
        paired = total(|c| c.paired),
        bad_tokens = total(crate::engine_metrics::bad_tokens),
        bad_hellos = total(|c| c.bad_hellos),
        "proxy summary"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_endpoint_is_the_bind_address_as_written() {
        let bound: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let bind = |s: &str| s.parse::<tandem_settings::HostPort>().unwrap();
        assert_eq!(
            default_endpoint(&bind("localhost:9999"), bound),
            "localhost:9999"
        );
        assert_eq!(default_endpoint(&bind("[::1]:9999"), bound), "[::1]:9999");
        let ephemeral: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(
            default_endpoint(&bind("localhost:0"), ephemeral),
            "127.0.0.1:40123"
        );
        assert_eq!(
            default_endpoint(&bind("0.0.0.0:9999"), bound),
            "127.0.0.1:9999"
        );
    }
}

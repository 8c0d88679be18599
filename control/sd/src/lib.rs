//! The service directory server (`sd run`): JSON-RPC over HTTPS with mTLS, serving the verified
//! best chain and taking signed submissions (SPEC §3.5).

mod error;
mod methods;
mod metrics;
pub mod reload;
mod service;

use std::future::Future;
use std::sync::Arc;

use tracing::info;

pub use error::SdError;
pub use methods::{STALE_APPEND, SdMethods};
pub use metrics::SdMetrics;
pub use service::{
    DirectoryService, FULL_READ_EVERY, MAX_APPEND_ATTEMPTS, RECORD_ENTRY_TYPE, REFRESH_INTERVAL,
};

use tandem_datastore::Datastore;
use tandem_directory::verify::Verifier;
use tandem_net::http::{RouteConfig, ServerLimits, jsonrpc_router_observed, serve};
use tandem_net::metrics::MetricsServer;
use tandem_net::reload::{ReloadFn, ReloadMetrics, Reloader, apply_log_level};
use tandem_serving::{ListenerGroup, ServingMetrics};
use tandem_settings::SettingsError;
use tandem_settings::sd::SdSettings;

pub use tandem_net::http::HTTP_ALPN;

/// The name a supervisor gives the JSON-RPC socket it passes (`FileDescriptorName=`).
pub const JSONRPC_SOCKET: &str = "jsonrpc_server";

/// Re-reads the settings for a reload (the same files the process started from).
pub type SettingsSource = Arc<dyn Fn() -> Result<SdSettings, SettingsError> + Send + Sync>;

/// Adopts the JSON-RPC socket a supervisor passed as [`JSONRPC_SOCKET`], else binds the
/// configured address.
pub async fn bind(settings: &SdSettings) -> Result<ListenerGroup, SdError> {
    Ok(tandem_serving::bind_named(JSONRPC_SOCKET, &settings.jsonrpc_server.bind_address).await?)
}

/// Runs the directory server on `listener` (every socket of a group) until `shutdown` resolves.
pub async fn run(
    settings: &SdSettings,
    listener: impl Into<ListenerGroup>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SdError> {
    serve_directory(settings, listener.into(), shutdown, None).await
}

/// [`run`], and on every `SIGHUP` reloads what [`reload`] can change from `source`.
pub async fn run_reloading(
    settings: &SdSettings,
    listener: impl Into<ListenerGroup>,
    shutdown: impl Future<Output = ()>,
    source: SettingsSource,
) -> Result<(), SdError> {
    serve_directory(settings, listener.into(), shutdown, Some(source)).await
}

async fn serve_directory(
    settings: &SdSettings,
    listener: ListenerGroup,
    shutdown: impl Future<Output = ()>,
    source: Option<SettingsSource>,
) -> Result<(), SdError> {
    let prepared = reload::prepare(settings.clone())?;
    apply_log_level(settings.log_level.as_deref());
    let tls = prepared.server_tls();
    let server = &settings.jsonrpc_server;
    let directory = &settings.directory;
    let verifier = Arc::new(Verifier::from_files(
        &directory.ca_certificate_files,
        &directory.ca_intermediate_certificate_files,
    )?);
    let store = Datastore::open(&directory.datastore).await?;
    let max_records = usize::try_from(settings.limits.max_records_per_submit).unwrap_or(usize::MAX);
    let mut registry = tandem_net::metrics::Registry::default();
    let sd_metrics = SdMetrics::register(&mut registry);
    let rpc_metrics = tandem_net::metrics::RpcMetrics::register(
        &mut registry,
        "sd_rpc",
        tandem_contracts::sd::Method::NAMES,
    );
    let serving_metrics = ServingMetrics::register(&mut registry);
    let shared = matches!(store, Datastore::Redis(_));
    let reload_metrics = ReloadMetrics::register(&mut registry);
    let service = Arc::new(DirectoryService::open(store, verifier, max_records, sd_metrics).await?);
    service.observe_ledger();
    // A Redis store may be shared with other sd processes: read what they append.
    let (stop_refresh, stop) = tokio::sync::watch::channel(false);
    let refresher = shared.then(|| {
        let service = service.clone();
        tokio::spawn(async move { service.refresh_until(stop).await })
    });
    let (stop_reloads, reloads_stopped) = tandem_serving::shutdown();
    let reloads = source.map(|source| {
        let live = reload::Live::new(settings.clone(), tls.clone(), service.clone());
        let reload: ReloadFn = Arc::new(move || live.apply(reload::prepare(source()?)?));
        tokio::spawn(Reloader::new(reload, reload_metrics).on_sighup(reloads_stopped))
    });
    let route = RouteConfig::for_server(
        server,
        usize::try_from(settings.limits.max_body_bytes).unwrap_or(usize::MAX),
        settings.limits.request_timeout,
    );
    let router =
        jsonrpc_router_observed(Arc::new(SdMethods::new(service)), route, Some(rpc_metrics));
    let reading = |source| SdError::Io {
        context: "reading the bound address".into(),
        source,
    };
    let local = listener.local_addr().map_err(reading)?;
    let addresses = listener.local_addrs().map_err(reading)?;
    let ready = tandem_net::metrics::Readiness::new();
    let metrics = match &settings.metrics {
        Some(m) => Some(MetricsServer::spawn(
            tandem_net::metrics::bind(m).await?,
            registry,
            ready.clone(),
        )),
        None => None,
    };
    ready.set(true);
    // Logged once ready: tests and scripts take this line as "serving".
    info!(address = %local, addresses = ?addresses, tls = tls.is_some(), "sd listening");
    // Type=notify: started once serving; STOPPING=1 as soon as the shutdown begins.
    tandem_serving::notify(&[tandem_serving::Notice::Ready]);
    let shutdown = async {
        shutdown.await;
        tandem_serving::notify(&[tandem_serving::Notice::Stopping]);
    };
    let mut limits = ServerLimits::named("sd", server.serving.clone(), serving_metrics);
    // A request in flight at the stop may take its whole time; nothing holds the stop longer.
    limits.grace = settings.limits.request_timeout;
    serve(listener, tls, router, limits, shutdown).await;
    ready.set(false);
    let _ = stop_refresh.send(true);
    if let Some(refresher) = refresher
        && let Err(e) = refresher.await
    {
        tracing::warn!(error = %e, "the datastore refresher failed");
    }
    stop_reloads.trigger();
    if let Some(reloads) = reloads {
        // The task only ends; a panic in it has already been reported.
        let _ = reloads.await;
    }
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    info!("sd stopped");
    Ok(())
}

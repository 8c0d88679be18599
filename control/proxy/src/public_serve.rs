//! (Child of `public`.) [`PublicProxy::serve`]: the JSON-RPC server, the SNI notifier, reloads,
//! metrics and ControlService run until shutdown or a hand-over, with the periodic prune and
//! shared-store refresh; then everything stops in order and the engine drains.

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use tandem_net::http::{ServerLimits, jsonrpc_router_observed, serve};
use tandem_net::metrics::{MetricsServer, Readiness};
use tandem_net::reload::{ReloadFn, ReloadMetrics, Reloader};
use tandem_serving::Notice;
use tracing::{info, warn};

use super::engine_start::log_summary;
use super::{PRUNE_INTERVAL, PublicHandle, PublicProxy};
use crate::control::ControlPlane;
use crate::error::ProxyError;
use crate::journal::SHARED_REFRESH_INTERVAL;
use crate::public_methods::PublicMethods;
use crate::reload::{Block, Live};
use crate::route_config;
use crate::sni::{Notifier, dispatch};

impl PublicProxy {
    /// Serves until `shutdown` resolves; then stops the JSON-RPC server and the notifier, and
    /// drains the engine.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let state = self.state;
        let (stop_tx, stop) = tandem_serving::shutdown();
        let notifier = Notifier {
            hyper: state.hyper.clone(),
            engine: state.engine.clone(),
            endpoint: state.endpoint.clone(),
            counters: state.counters.clone(),
            quotas: state.quotas.clone(),
            pair_ttl: self.settings.accept_timeout,
        };
        let notifier = tokio::spawn(dispatch(self.jobs, notifier, stop.clone()));
        let methods = Arc::new(PublicMethods::new(state.clone()));
        let route = route_config(
            &self.settings.jsonrpc_server,
            self.settings.call_timeout * 3,
        );
        let (mut registry, rpc_metrics, serving_metrics) = crate::metrics::public_registry(
            state.engine.clone(),
            state.counters.clone(),
            self.events.clone(),
        );
        let router = jsonrpc_router_observed(methods, route, Some(rpc_metrics));
        let reload_metrics = ReloadMetrics::register(&mut registry);
        if let Some(log) = &state.access_log {
            log.register(&mut registry);
        }
        let reloads = self.reload_source.map(|source| {
            let live = Live::new(
                Block::Public,
                self.tls.clone(),
                self.control.as_ref().map(ControlPlane::live),
            );
            let reload: ReloadFn = Arc::new(move || live.apply(crate::reload::prepare(source()?)?));
            let reloader = Reloader::new(reload, reload_metrics);
            if let Some(control) = &self.control {
                control.set_reloader(reloader.clone());
            }
            tokio::spawn(reloader.on_sighup(stop.clone()))
        });
        let ready = Readiness::new();
        let metrics = self
            .metrics
            .map(|l| MetricsServer::spawn(l, registry, ready.clone()));
        // The listener is bound: ready from here on (before the first request can be served).
        ready.set(true);
        let server = tokio::spawn(serve(
            self.listener,
            self.tls,
            router,
            ServerLimits::named(
                "public_proxy",
                self.settings.jsonrpc_server.serving.clone(),
                serving_metrics.clone(),
            ),
            stop.clone().wait(),
        ));
        let control = self.control.map(|c| c.spawn(stop.clone(), serving_metrics));
        match self.inherited {
            // Type=notify with NotifyAccess=all: this process becomes the service's main process
            // (told before the old one can exit, so that the manager never sees the service's
            // main process end), then the old one stops.
            Some(inherited) => {
                tandem_serving::notify(&[Notice::this_main_pid(), Notice::Ready]);
                crate::upgrade::report_ready(inherited).await;
            }
            None => {
                tandem_serving::notify(&[Notice::Ready]);
            }
        }
        tokio::pin!(shutdown);
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        let mut refresh = tokio::time::interval(SHARED_REFRESH_INTERVAL);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut requests = crate::upgrade::Requests::new(self.upgrade.is_some(), self.asks);
        let mut handed_over = false;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = prune.tick() => {
                    state.announcements.prune(Utc::now());
                    log_summary(&state);
                }
                // Announcements other nodes wrote to a shared store route here too.
                _ = refresh.tick() => tokio::select! {
                    () = &mut shutdown => break,
                    r = state.announcements.refresh(Utc::now()) => {
                        if let Err(e) = r {
                            warn!(kind = e.kind(), error = %e, "reading the shared announcement store failed");
                        }
                    }
                },
                ask = requests.next() => {
                    let up = self.upgrade.as_ref();
                    if crate::upgrade::answer(up, &state, &self.listener_fds, ask).await {
                        handed_over = true;
                        break;
                    }
                }
            }
        }
        info!(handed_over, "public proxy stopping: draining");
        // After a hand-over the service goes on in the new process: no STOPPING=1 from here.
        if !handed_over {
            tandem_serving::notify(&[Notice::Stopping]);
        }
        ready.set(false);
        stop_tx.trigger();
        let _ = server.await;
        let _ = notifier.await;
        if let Some(reloads) = reloads {
            let _ = reloads.await;
        }
        // After a hand-over the store belongs to the new process (writes here stay held).
        if !handed_over {
            state.announcements.close(Utc::now()).await;
        }
        if let Some(control) = control {
            let _ = control.await;
        }
        let engine = state.engine.clone();
        let grace = self.settings.engine.drain_grace;
        let drained = tokio::task::spawn_blocking(move || engine.drain(grace)).await;
        let hub = self.events;
        let _ = tokio::task::spawn_blocking(move || hub.shutdown()).await;
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        let stats = PublicHandle { state }.stats();
        info!(proxy = ?stats.proxy, paired = stats.engine_total(|c| c.paired), "public proxy stopped");
        match drained {
            Ok(r) => r.map_err(ProxyError::from),
            Err(e) => Err(ProxyError::DrainTask(e)),
        }
    }
}

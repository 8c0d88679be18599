//! Serves the operator's local JSON-RPC gateway (`jsonrpc_server` channel, SPEC §2.2–2.3) with the
//! shared HTTP server: TLS from the settings, CORS, rate limits, HTTP/1.1 and HTTP/2.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::HyperServerError;
use crate::broker::types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, HyperRequest, HyperResponse,
};
use crate::broker::{GatewayAdmission, JsonRpcGateway, MessageBroker};
use tandem_directory::entry::DirectoryEntry;
use tandem_net::http::{RouteConfig, ServerLimits, jsonrpc_router, serve};
use tandem_net::metrics::Refusals;
use tandem_net::tls::ServerTls;
use tandem_serving::{ListenerGroup, ServingMetrics};
use tandem_settings::hyper::GatewaySettings;

/// The largest request body the gateway reads, in bytes: a request must fit a 4 MiB gRPC message.
pub const MAX_GATEWAY_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Extra time the HTTP route allows beyond `timeouts.call`, so that the broker's own, clearer
/// deadline error reaches the caller first.
pub const ROUTE_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// Serves the gateway on `listener` until `shutdown` resolves, admitting the callers `gateway`
/// allows (refusals counted in `refusals`). Returns the serving future and the listener's
/// replaceable TLS config (for reloads).
pub(super) fn serve_gateway(
    gateway: &GatewaySettings,
    broker: Arc<MessageBroker>,
    call_timeout: Duration,
    refusals: Refusals,
    metrics: ServingMetrics,
    listener: ListenerGroup,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(impl Future<Output = ()> + Send + 'static, Option<ServerTls>), HyperServerError> {
    let settings = &gateway.server;
    let tls = tandem_net::http::server_tls(settings)?.map(ServerTls::new);
    let route = RouteConfig::for_server(
        settings,
        MAX_GATEWAY_BODY_BYTES,
        call_timeout + ROUTE_TIMEOUT_MARGIN,
    );
    if let Some(warning) = gateway.unverified_warning(broker.name()) {
        warn!(detail = %warning, "UNVERIFIED GATEWAY: the JSON-RPC gateway cannot verify its callers; every caller acts as the operator");
    }
    let admission = GatewayAdmission::new(broker.name(), gateway, refusals);
    let router = jsonrpc_router(Arc::new(JsonRpcGateway::new(broker, admission)), route);
    let addr = listener
        .local_addr()
        .map_err(|source| HyperServerError::Io {
            context: "reading the JSON-RPC address".into(),
            source,
        })?;
    let addresses = listener.local_addrs().unwrap_or_default();
    info!(address = %addr, addresses = ?addresses, tls = tls.is_some(), path = %settings.path, verifies_clients = gateway.verifies_clients(), allowed_clients = ?gateway.allowed_clients, "JSON-RPC gateway listening");
    let live = tls.clone();
    let mut limits = ServerLimits::named("gateway", settings.serving.clone(), metrics);
    // A call in flight at the stop may take its whole time; nothing holds the stop longer.
    limits.grace = call_timeout + ROUTE_TIMEOUT_MARGIN;
    let serving = serve(listener, tls, router, limits, shutdown);
    Ok((serving, live))
}

/// The gateway's place in the broker's channel list: inbound only, it never delivers (the original
/// lists it too, so channel indices in "Channel <i> ..." errors match the settings order).
#[derive(Debug, Clone, Copy)]
pub struct InboundOnly(pub &'static str);

impl Channel for InboundOnly {
    fn type_name(&self) -> &'static str {
        self.0
    }

    fn can_deliver_to(&self, _address: &Address, _recipient: &DirectoryEntry) -> bool {
        false
    }

    fn deliver(
        &self,
        _request: HyperRequest,
        _client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NoChannel) })
    }
}

//! The `stdout` channel (debugging): logs requests addressed to this operator and answers nothing,
//! which the gateway reports as `{"message": "submitted"}`.

use tracing::info;

use super::types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, HyperRequest, HyperResponse,
};
use tandem_directory::entry::DirectoryEntry;

/// Logs each request (target `tandem::stdout`) and returns an empty response.
#[derive(Debug, Clone)]
pub struct StdoutChannel {
    own_name: String,
}

impl StdoutChannel {
    /// A channel for operator `own_name`.
    pub fn new(own_name: &str) -> Self {
        Self {
            own_name: own_name.to_owned(),
        }
    }
}

impl Channel for StdoutChannel {
    fn type_name(&self) -> &'static str {
        "stdout"
    }

    fn can_deliver_to(&self, address: &Address, _recipient: &DirectoryEntry) -> bool {
        address.operator == self.own_name
    }

    fn deliver(
        &self,
        request: HyperRequest,
        _client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        let params = serde_json::Value::Object(request.params);
        info!(target: "tandem::stdout", method = %request.method, id = %request.id, %params, "request");
        Box::pin(async move {
            Ok(HyperResponse {
                id: request.id,
                result: None,
                error: None,
            })
        })
    }
}

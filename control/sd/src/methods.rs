//! The `sd` JSON-RPC methods: `submitRecords`, `getTip`, `getRecords`, `getEntries`, `getEntry`.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::error::SdError;
use super::service::DirectoryService;
use tandem_directory::SignedChangeRecord;
use tandem_directory::ledger::AppendError;
use tandem_net::http::{Methods, PeerInfo};
use tandem_net::jsonrpc::{
    ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, NOT_FOUND, Request,
};

/// JSON-RPC code for a submission whose parent is no longer the tip: fetch the tip and retry.
pub const STALE_APPEND: i64 = 409;

/// The `sd` method table over a [`DirectoryService`].
#[derive(Clone)]
pub struct SdMethods {
    service: Arc<DirectoryService>,
}

impl SdMethods {
    /// Methods over `service`.
    pub fn new(service: Arc<DirectoryService>) -> Self {
        Self { service }
    }
}

impl Methods for SdMethods {
    async fn call(&self, request: Request, peer: PeerInfo) -> Result<Value, ErrorObject> {
        let params = request.params;
        match request.method.as_str() {
            "submitRecords" => self.submit_records(params, &peer).await,
            "getTip" => Ok(to_json(self.service.tip())),
            "getRecords" => {
                let after = optional_hash(&params, "after")?;
                Ok(to_json(self.service.records_after(&after)))
            }
            "getEntries" => Ok(to_json(self.service.entries())),
            "getEntry" => {
                let name = required_string(&params, "name")?;
                match self.service.entry(&name) {
                    Some(entry) => Ok(to_json(entry)),
                    None => Err(ErrorObject::new(NOT_FOUND, "not found")),
                }
            }
            _ => Err(ErrorObject::new(METHOD_NOT_FOUND, "method not found")),
        }
    }
}

impl SdMethods {
    async fn submit_records(
        &self,
        mut params: Map<String, Value>,
        peer: &PeerInfo,
    ) -> Result<Value, ErrorObject> {
        let records = match params.remove("records") {
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    // Re-encoding bounds each record by MAX_RECORD_BYTES, as stored records are.
                    let bytes = serde_json::to_vec(&item).unwrap_or_default();
                    SignedChangeRecord::from_json(&bytes)
                        .map_err(|e| invalid_params(format!("records[{i}]: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(invalid_params("records: required list".into())),
        };
        let count = records.len();
        match self.service.submit(records).await {
            Ok(()) => {
                info!(peer = %peer.addr, count, "records appended");
                Ok(Value::String("ok".into()))
            }
            Err(e) => {
                warn!(peer = %peer.addr, kind = e.kind(), error = %e, "submission refused");
                Err(submit_error(&e))
            }
        }
    }
}

/// One place that turns a submission failure into the error the client sees.
fn submit_error(error: &SdError) -> ErrorObject {
    match error {
        SdError::Append(AppendError::Stale) => {
            ErrorObject::new(STALE_APPEND, "stale append, please try again")
        }
        SdError::Append(AppendError::Full) | SdError::Datastore(_) => {
            ErrorObject::new(INTERNAL_ERROR, "internal error")
        }
        SdError::Append(e) => ErrorObject::new(INVALID_PARAMS, format!("records refused: {e}"))
            .with_data(json!({"kind": e.kind()})),
        SdError::TooManyRecords { .. } => invalid_params(error.to_string()),
        _ => ErrorObject::new(INTERNAL_ERROR, "internal error"),
    }
}

fn invalid_params(reason: String) -> ErrorObject {
    ErrorObject::new(INVALID_PARAMS, "invalid params").with_data(Value::String(reason))
}

fn required_string(params: &Map<String, Value>, key: &str) -> Result<String, ErrorObject> {
    match params.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid_params(format!("{key}: required string"))),
    }
}

/// `after`: optional, empty or 64 lowercase hex digits.
fn optional_hash(params: &Map<String, Value>, key: &str) -> Result<String, ErrorObject> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s))
            if s.is_empty()
                || (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))) =>
        {
            Ok(s.clone())
        }
        _ => Err(invalid_params(format!(
            "{key}: must be empty or 64 lowercase hex digits"
        ))),
    }
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    // Directory types are plain data with string keys; serialisation cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

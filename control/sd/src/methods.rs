//! The `sd` JSON-RPC methods: `submitRecords`, `getTip`, `getRecords`, `getEntries`, `getEntry`
//! (the contract is `tandem_contracts::sd`).

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::error::SdError;
use super::service::DirectoryService;
use tandem_contracts::sd::{GetEntries, GetEntry, GetRecords, GetTip, Method, SubmitRecords};
use tandem_contracts::{Call, OkText, decode_params, encode_result};
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
        let Ok(method) = request.method.parse::<Method>() else {
            return Err(ErrorObject::new(METHOD_NOT_FOUND, "method not found"));
        };
        let params = request.params;
        match method {
            Method::SubmitRecords => self.submit_records(params, &peer).await,
            Method::GetTip => {
                decode::<GetTip>(params)?;
                answer::<GetTip>(&self.service.tip())
            }
            Method::GetRecords => {
                let after = hash(decode::<GetRecords>(params)?.after)?;
                answer::<GetRecords>(&self.service.records_after(&after))
            }
            Method::GetEntries => {
                decode::<GetEntries>(params)?;
                answer::<GetEntries>(&self.service.entries())
            }
            Method::GetEntry => {
                let name = decode::<GetEntry>(params)?.name;
                match self.service.entry(name.as_str()) {
                    Some(entry) => answer::<GetEntry>(&entry),
                    None => Err(ErrorObject::new(NOT_FOUND, "not found")),
                }
            }
        }
    }
}

impl SdMethods {
    /// `submitRecords` ([`SubmitRecords`]): each record is decoded on its own from its re-encoded
    /// bytes, so it is bounded by `MAX_RECORD_BYTES` as stored records are and a refusal names its
    /// index.
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
                answer::<SubmitRecords>(&OkText)
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

/// The typed params of a call; a mismatch is `invalid params` with the reason as data.
fn decode<C: Call>(params: Map<String, Value>) -> Result<C, ErrorObject> {
    decode_params::<C>(params).map_err(|e| invalid_params(e.to_string()))
}

/// The JSON of a call's result; a value that cannot be encoded is an internal error, not `null`.
fn answer<C: Call>(result: &C::Result) -> Result<Value, ErrorObject> {
    encode_result::<C>(result).map_err(|e| {
        warn!(method = C::method(), error = %e, "result could not be encoded");
        ErrorObject::new(INTERNAL_ERROR, "internal error")
    })
}

/// `after`: absent, `null`, empty or 64 lowercase hex digits.
fn hash(after: Option<String>) -> Result<String, ErrorObject> {
    let after = after.unwrap_or_default();
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if after.is_empty() || hex(&after) {
        Ok(after)
    } else {
        Err(invalid_params(
            "after: must be empty or 64 lowercase hex digits".into(),
        ))
    }
}

//! Asynchronous replies (`respond`, SPEC §2.5): requests delivered to the local application that the
//! application answers later, by calling `respond` on its local JSON-RPC gateway.
//!
//! Protocol (Tandem's design; the original only documents the idea):
//! 1. The `jsonrpc_client` channel registers the request's addressable id here *before* it POSTs the
//!    request to the application (so a `respond` that overtakes the HTTP answer is not lost).
//! 2. The application answers the POST with `"result": {"_async": true}` ([`ASYNC_MARKER`]) to say
//!    "I will answer later". Any other answer is the reply, and the registration is dropped.
//! 3. Later it calls `respond` on the gateway with params `{"id": "<the id it was given>",
//!    "result": ...}` or `{"id": ..., "error": {"code", "message", "data"}}`; the waiting caller's call
//!    completes with that reply. A waiter gives up at its deadline (`timeouts.call`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::types::HyperResponse;

/// The key in a result object that marks an answer as "will respond later".
pub const ASYNC_MARKER: &str = "_async";

/// Most replies awaited at once. Each holds a oneshot and the id (≤ ~1.2 KiB); 4096 bounds the
/// table at a few MiB and is far above the gateway's concurrent calls.
pub const MAX_PENDING_REPLIES: usize = 4096;

/// Why a reply could not be registered or delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    /// [`MAX_PENDING_REPLIES`] replies are already awaited.
    #[error("too many pending asynchronous replies ({MAX_PENDING_REPLIES})")]
    Full,
    /// The id is already awaited.
    #[error("a reply for {0} is already awaited")]
    Duplicate(String),
    /// No caller waits for this id (never delivered, already answered, or its deadline passed).
    #[error("no pending request with id {0}")]
    Unknown(String),
}

impl PendingError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Duplicate(_) => "duplicate",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// The table of awaited replies, keyed by addressable id.
#[derive(Debug, Default)]
pub struct PendingReplies {
    // std Mutex: held only for a map operation, never across an await.
    waiting: Mutex<HashMap<String, oneshot::Sender<HyperResponse>>>,
}

/// A registration; dropping it removes the id from the table (deadline passed, synchronous answer,
/// or the caller went away).
#[derive(Debug)]
pub struct PendingReply {
    table: Arc<PendingReplies>,
    id: String,
    receiver: oneshot::Receiver<HyperResponse>,
}

impl PendingReplies {
    /// An empty table.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers `id`; the returned handle receives the reply.
    pub fn register(self: &Arc<Self>, id: &str) -> Result<PendingReply, PendingError> {
        let mut waiting = self.lock();
        if waiting.contains_key(id) {
            return Err(PendingError::Duplicate(id.to_owned()));
        }
        if waiting.len() >= MAX_PENDING_REPLIES {
            return Err(PendingError::Full);
        }
        let (sender, receiver) = oneshot::channel();
        waiting.insert(id.to_owned(), sender);
        Ok(PendingReply {
            table: self.clone(),
            id: id.to_owned(),
            receiver,
        })
    }

    /// Hands `response` to the caller waiting for `id`.
    pub fn complete(&self, id: &str, response: HyperResponse) -> Result<(), PendingError> {
        let sender = self
            .lock()
            .remove(id)
            .ok_or_else(|| PendingError::Unknown(id.to_owned()))?;
        sender
            .send(response)
            .map_err(|_| PendingError::Unknown(id.to_owned()))
    }

    /// How many replies are awaited.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no reply is awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<HyperResponse>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single operations).
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PendingReply {
    /// The awaited id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the reply; `None` if the table dropped the sender (cannot happen while registered).
    pub async fn wait(mut self) -> Option<HyperResponse> {
        (&mut self.receiver).await.ok()
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_reaches_its_waiter_even_before_it_waits() {
        let table = PendingReplies::new();
        let pending = table.register("hd-1.echo(1)").unwrap();
        table
            .complete("hd-1.echo(1)", HyperResponse::error("x", 7, "late"))
            .unwrap();
        let reply = pending.wait().await.unwrap();
        assert_eq!(reply.error.unwrap().code, 7);
        assert!(table.is_empty());
    }

    #[test]
    fn unknown_duplicate_and_dropped_ids_are_refused() {
        let table = PendingReplies::new();
        assert_eq!(
            table.complete("nope", HyperResponse::default()),
            Err(PendingError::Unknown("nope".into()))
        );
        let pending = table.register("a").unwrap();
        assert_eq!(
            table.register("a").unwrap_err(),
            PendingError::Duplicate("a".into())
        );
        drop(pending);
        assert!(table.is_empty(), "dropping the registration forgets the id");
        assert!(table.complete("a", HyperResponse::default()).is_err());
    }

    #[test]
    fn the_table_is_bounded() {
        let table = PendingReplies::new();
        let held: Vec<_> = (0..MAX_PENDING_REPLIES)
            .map(|i| table.register(&i.to_string()).unwrap())
            .collect();
        assert_eq!(table.register("one more").unwrap_err(), PendingError::Full);
        drop(held);
        assert!(table.register("one more").is_ok());
    }
}

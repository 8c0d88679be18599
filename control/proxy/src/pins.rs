//! The directory as a proxy sees it, for its identity checks (the caller of its JSON-RPC server,
//! the admins of its ControlService): every entry through its own Hyper node
//! (`<own>._directory {}`), cached for [`PINS_TTL`] with one fetch at a time.
//!
//! While the Hyper node cannot be reached, the last snapshot serves for up to [`PINS_MAX_STALE`];
//! without one, checks that need the directory fail closed (the caller gets a retryable error).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::hyper_link::HyperLink;
use tandem_directory::source::{BoxFuture, DirectorySource, Entries, SourceError};

/// How long a fetched snapshot is used before the next call fetches again (the Hyper node's own
/// cache refreshes on the same order).
pub const PINS_TTL: Duration = Duration::from_secs(30);
/// How long an old snapshot still serves while the Hyper node cannot be reached: pins change
/// rarely, and an hour keeps admins working through a Hyper restart without trusting a revoked
/// pin for long.
pub const PINS_MAX_STALE: Duration = Duration::from_secs(3600);

struct Snapshot {
    fetched: Instant,
    entries: Entries,
}

/// The directory through our Hyper node, cached.
pub struct HyperDirectory {
    link: HyperLink,
    /// Held across the fetch: one fetch at a time, later callers use its result.
    cache: Mutex<Option<Snapshot>>,
}

impl std::fmt::Debug for HyperDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperDirectory").finish_non_exhaustive()
    }
}

impl HyperDirectory {
    /// A cache in front of `link`'s `_directory`.
    pub fn new(link: HyperLink) -> Arc<Self> {
        Arc::new(Self {
            link,
            cache: Mutex::new(None),
        })
    }

    async fn snapshot(&self) -> Result<Entries, SourceError> {
        let mut cache = self.cache.lock().await;
        if let Some(s) = cache.as_ref().filter(|s| s.fetched.elapsed() < PINS_TTL) {
            return Ok(s.entries.clone());
        }
        match self.link.all_entries().await {
            Ok(list) => {
                let entries: Entries = Arc::new(
                    list.into_iter()
                        .map(|e| (e.name.clone(), e))
                        .collect::<BTreeMap<_, _>>(),
                );
                debug!(
                    entries = entries.len(),
                    "directory fetched from our Hyper node"
                );
                *cache = Some(Snapshot {
                    fetched: Instant::now(),
                    entries: entries.clone(),
                });
                Ok(entries)
            }
            Err(e) => match cache
                .as_ref()
                .filter(|s| s.fetched.elapsed() < PINS_MAX_STALE)
            {
                Some(s) => {
                    warn!(error = %e, age = ?s.fetched.elapsed(), "our Hyper node's directory is unreachable; using the last snapshot");
                    Ok(s.entries.clone())
                }
                None => Err(SourceError::Unreachable {
                    directory: "our Hyper node's directory".to_owned(),
                    reason: e.to_string(),
                }),
            },
        }
    }
}

impl DirectorySource for HyperDirectory {
    fn entries(&self) -> BoxFuture<'_, Result<Entries, SourceError>> {
        Box::pin(self.snapshot())
    }
}

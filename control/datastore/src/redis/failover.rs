//! Following the master through a Sentinel failover: resolving it again after a failure that
//! means it may have moved, and retrying idempotent calls for up to `failover_timeout`.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{REDIS_TIMEOUT, RedisDatastore, bounded, connect};
use crate::error::DatastoreError;

/// Pause between two attempts of a retried call: 250 ms, so a Sentinel failover (seconds) costs
/// a few dozen attempts, each a Sentinel query and a connect on a refused or read-only server.
pub const FAILOVER_RETRY_PAUSE: Duration = Duration::from_millis(250);

impl RedisDatastore {
    /// Passes `result` through; after a failure that means the master may have moved, first
    /// resolves the master again through Sentinel (plain connections reconnect by themselves).
    pub(super) async fn after<T>(
        &self,
        result: Result<T, DatastoreError>,
    ) -> Result<T, DatastoreError> {
        if let Err(e) = &result
            && e.needs_master()
        {
            self.resolve_master().await;
        }
        result
    }

    /// Asks the Sentinels for the master and connects to it; on failure keeps the connection it
    /// has (logged: the next failing call tries again).
    async fn resolve_master(&self) {
        let Some(sentinel) = &self.sentinel else {
            return;
        };
        let resolved = async {
            let client = bounded(
                "sentinel",
                REDIS_TIMEOUT,
                sentinel.lock().await.async_get_client(),
            )
            .await?;
            connect(client, self.response_timeout).await
        };
        match resolved.await {
            Ok(manager) => self.set_manager(manager),
            Err(err) => {
                tracing::warn!(error = %err, kind = err.kind(), "cannot resolve the redis master through sentinel")
            }
        }
    }

    fn set_manager(&self, manager: ConnectionManager) {
        match self.manager.write() {
            Ok(mut m) => *m = manager,
            Err(poisoned) => *poisoned.into_inner() = manager,
        }
    }

    /// Runs the idempotent `call` until it succeeds, fails for a reason a failover does not
    /// explain, or `failover_timeout` has passed since the first failure; resolves the master
    /// again after each failure.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        op: &'static str,
        mut call: F,
    ) -> Result<T, DatastoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DatastoreError>>,
    {
        let mut deadline = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self.after(call().await).await;
            let err = match result {
                Err(e) if e.needs_master() => e,
                other => return other,
            };
            let until = *deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + self.failover_timeout);
            if tokio::time::Instant::now() + FAILOVER_RETRY_PAUSE > until {
                return Err(err);
            }
            tracing::debug!(op, attempt, kind = err.kind(), error = %err, "redis call failed, retrying");
            tokio::time::sleep(FAILOVER_RETRY_PAUSE).await;
        }
    }

    /// After an append on `manager`: `WAIT` for `wait_replicas` replicas, when configured.
    pub(super) async fn wait_for_replicas(
        &self,
        manager: &mut ConnectionManager,
    ) -> Result<(), DatastoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let millis = u64::try_from(self.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        let acked = bounded(
            "WAIT",
            self.response_timeout,
            redis::cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(millis)
                .query_async::<u64>(manager),
        )
        .await;
        let acked = self.after(acked).await?;
        if acked < u64::from(self.wait_replicas) {
            return Err(DatastoreError::NotReplicated {
                acked,
                wanted: self.wait_replicas,
            });
        }
        Ok(())
    }
}

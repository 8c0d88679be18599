//! Lua scripts of other components on the store's connection (the proxy's fleet quota counter):
//! one `EVAL` under the call deadline, following the master through a Sentinel failover after a
//! failure (not retried: a caller's script need not be idempotent).

use super::{REDIS_TIMEOUT, RedisDatastore, bounded};
use crate::error::DatastoreError;

/// Bound on a script's keys and arguments together: 64. A caller's scripts name a few keys
/// each; the bound keeps one call's request small.
pub const MAX_SCRIPT_ARGS: usize = 64;

impl RedisDatastore {
    /// Runs `script` (Lua, atomic as every Redis script) with `keys` and `args` under
    /// [`REDIS_TIMEOUT`] and returns its array of integers. After a failure that means the master
    /// may have moved, resolves it again through Sentinel (the next call goes there); the call
    /// itself is not retried. An `EVAL` that timed out may still have been applied.
    pub async fn eval_ints(
        &self,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<Vec<i64>, DatastoreError> {
        if keys.len() + args.len() > MAX_SCRIPT_ARGS {
            return Err(DatastoreError::Config(format!(
                "a script with {} keys and arguments (at most {MAX_SCRIPT_ARGS})",
                keys.len() + args.len()
            )));
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        let mut manager = self.manager();
        let result = bounded(
            "EVAL",
            REDIS_TIMEOUT,
            cmd.query_async::<Vec<i64>>(&mut manager),
        )
        .await;
        self.after(result).await
    }
}

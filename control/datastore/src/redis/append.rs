//! Compare-and-append: one Lua script appends a batch only when the list ends exactly where the
//! caller's cursor has read, so across processes exactly one of several appends decided on the
//! same contents wins.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{REDIS_TIMEOUT, RedisDatastore, bounded};
use crate::data_entry::DataEntry;
use crate::error::DatastoreError;
use crate::{AppendAt, Cursor};

/// `KEYS[1]` the list, `ARGV[1]` the length the caller read, `ARGV[2]` the last element it read
/// (empty when it read none), `ARGV[3..]` the new elements. Returns `{1, new length}` when
/// appended, `{0, length}` when the length differs, `{-1, length}` when the last element differs
/// (the list was rewritten). Atomic, as every script.
const APPEND_SCRIPT: &str = r"
local len = redis.call('LLEN', KEYS[1])
local expected = tonumber(ARGV[1])
if len ~= expected then return {0, len} end
if expected > 0 and redis.call('LINDEX', KEYS[1], -1) ~= ARGV[2] then return {-1, len} end
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
return {1, len + #ARGV - 2}
";

impl RedisDatastore {
    /// See [`crate::Datastore::append_at`].
    pub async fn append_at(
        &self,
        cursor: &mut Cursor,
        entries: &[DataEntry],
    ) -> Result<AppendAt, DatastoreError> {
        let encoded = entries
            .iter()
            .map(DataEntry::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = AtomicU32::new(0);
        let (code, len) = self
            .retrying("EVAL", || {
                attempts.fetch_add(1, Ordering::Relaxed);
                self.try_append(cursor, &encoded)
            })
            .await?;
        let n = encoded.len() as u64;
        let appended = match code {
            1 => true,
            // An earlier attempt failed with its outcome unknown: it may have landed.
            0 if attempts.load(Ordering::Relaxed) > 1 && len >= cursor.position + n => {
                self.holds_at(cursor.position, &encoded).await?
            }
            0 if len > cursor.position => false,
            0 => {
                return Err(DatastoreError::CursorAhead {
                    position: cursor.position,
                    len,
                });
            }
            _ => {
                return Err(DatastoreError::Rewritten {
                    position: cursor.position,
                });
            }
        };
        if !appended {
            return Ok(AppendAt::Behind);
        }
        let mut manager = self.manager();
        self.wait_for_replicas(&mut manager).await?;
        cursor.position += n;
        if let Some(last) = encoded.into_iter().last() {
            cursor.last = Some(last);
        }
        Ok(AppendAt::Appended)
    }

    async fn try_append(
        &self,
        cursor: &Cursor,
        encoded: &[Vec<u8>],
    ) -> Result<(i64, u64), DatastoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(APPEND_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(cursor.position)
            .arg(cursor.last.as_deref().unwrap_or_default());
        for e in encoded {
            cmd.arg(e.as_slice());
        }
        let mut manager = self.manager();
        bounded(
            "EVAL",
            REDIS_TIMEOUT,
            cmd.query_async::<(i64, u64)>(&mut manager),
        )
        .await
    }

    /// Whether the list holds exactly `encoded` from index `at`.
    async fn holds_at(&self, at: u64, encoded: &[Vec<u8>]) -> Result<bool, DatastoreError> {
        let overflow = || DatastoreError::CursorAhead {
            position: at,
            len: 0,
        };
        let start = isize::try_from(at).map_err(|_| overflow())?;
        let stop = isize::try_from(at + encoded.len() as u64).map_err(|_| overflow())? - 1;
        let found = self.retrying("LRANGE", || self.lrange(start, stop)).await?;
        Ok(found == encoded)
    }
}

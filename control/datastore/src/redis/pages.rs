//! Reading a whole list in pages at open, and replacing it atomically (compaction).

use super::{REDIS_TIMEOUT, RedisDatastore, bounded, decode_all};
use crate::data_entry::DataEntry;
use crate::error::DatastoreError;
use crate::{Cursor, EntryVisitor};
use tandem_settings::datastore::RedisDatastoreSettings;

/// List elements read per `LRANGE` by [`RedisDatastore::open_and_read`]: 1024 (announcements
/// are ~200 B each, so a page is ~200 KiB; each element is at most `MAX_ENTRY_LEN`).
pub const READ_PAGE_ENTRIES: u64 = 1024;

/// Replaces the list `KEYS[1]` with `ARGV[2..]` when it holds exactly `ARGV[1]` elements;
/// returns the new length, or -1 (nothing changed) when the length differs. Runs atomically.
const REPLACE_SCRIPT: &str = r"
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
return redis.call('LLEN', KEYS[1])
";

impl RedisDatastore {
    /// [`RedisDatastore::open`], then reads the whole list in pages of [`READ_PAGE_ENTRIES`],
    /// handing every entry to `visit` in list order. Returns the store, a cursor at the end of
    /// what was read and the visitor.
    pub async fn open_and_read<V>(
        settings: &RedisDatastoreSettings,
        mut visit: V,
    ) -> Result<(Self, Cursor, V), DatastoreError>
    where
        V: EntryVisitor,
    {
        let store = Self::open(settings).await?;
        let mut cursor = Cursor::default();
        loop {
            let page = store.read_page(&mut cursor, READ_PAGE_ENTRIES).await?;
            let full = page.len() as u64 == READ_PAGE_ENTRIES;
            page.into_iter().for_each(|e| visit.visit(e));
            if !full {
                break;
            }
        }
        Ok((store, cursor, visit))
    }

    /// Up to `max` elements after `cursor`; advances it.
    async fn read_page(
        &self,
        cursor: &mut Cursor,
        max: u64,
    ) -> Result<Vec<DataEntry>, DatastoreError> {
        let overflow = || DatastoreError::CursorAhead {
            position: cursor.position,
            len: 0,
        };
        let start = isize::try_from(cursor.position).map_err(|_| overflow())?;
        let stop = isize::try_from(cursor.position + max - 1).map_err(|_| overflow())?;
        let result = self.lrange(start, stop).await;
        let raw = self.after(result).await?;
        let entries = decode_all(&raw, cursor.position)?;
        cursor.position += entries.len() as u64;
        if let Some(last) = raw.into_iter().last() {
            cursor.last = Some(last);
        }
        Ok(entries)
    }

    /// Replaces the whole list with `snapshot` in one atomic script when it holds exactly
    /// `expected` elements; `Ok(false)` without writing otherwise (another writer appended). On
    /// `Err` (a timeout) the replacement may or may not have happened.
    pub async fn replace_all(
        &self,
        expected: u64,
        snapshot: &[DataEntry],
    ) -> Result<bool, DatastoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REPLACE_SCRIPT).arg(1).arg(&self.key).arg(expected);
        for entry in snapshot {
            cmd.arg(entry.encode()?);
        }
        let mut manager = self.manager();
        let result = bounded("EVAL", REDIS_TIMEOUT, cmd.query_async::<i64>(&mut manager)).await;
        Ok(self.after(result).await? >= 0)
    }
}

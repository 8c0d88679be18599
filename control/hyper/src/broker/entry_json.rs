//! Directory entries as JSON, made once per directory snapshot instead of on every call: the
//! `_client` the broker injects into every routed request (the caller's [`ClientInfo`]) and the
//! `serverInfo` of `_ping` (the node's own entry). Serialising a directory entry with its signed
//! records was a fixed share of every brokered call on both nodes (`tandem-bench broker`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

#[cfg(any(test, doc))]
use super::types::ClientInfo;
use super::types::Entries;
use tandem_directory::entry::DirectoryEntry;
use tandem_types::OperatorName;

/// Entries kept as JSON for one snapshot, per kind (callers' `_client`, own `serverInfo`): a node
/// sees few distinct callers; past this bound the rest are serialised per call (never unbounded).
pub const MAX_ENTRY_JSON: usize = 1024;

/// What is cached of one entry (the index of its map in [`Cache::values`]).
#[derive(Clone, Copy)]
enum Form {
    /// `{"name", "entry"}` ([`ClientInfo`]).
    Client = 0,
    /// The entry itself.
    Entry = 1,
}

#[derive(Default)]
struct Cache {
    /// The snapshot the values were made from (compared by pointer: a refresh is a new `Arc`).
    snapshot: Option<Entries>,
    /// By [`Form`], then operator name; each map holds at most [`MAX_ENTRY_JSON`] values.
    values: [HashMap<String, Arc<Value>>; 2],
}

/// The JSON of the current snapshot's entries. The lock is held only for a lookup or an insert,
/// never while serialising and never across an `.await`.
#[derive(Default)]
pub struct EntryJson {
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for EntryJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryJson").finish_non_exhaustive()
    }
}

impl EntryJson {
    /// `_client` for `name`, whose entry in snapshot `entries` is `entry`.
    pub fn client(
        &self,
        entries: &Entries,
        name: &OperatorName,
        entry: &DirectoryEntry,
    ) -> Result<Arc<Value>, serde_json::Error> {
        self.get(entries, Form::Client, &entry.name, || {
            // Serialised from references: the entry is not cloned.
            #[derive(serde::Serialize)]
            struct Borrowed<'a> {
                name: &'a OperatorName,
                entry: &'a DirectoryEntry,
            }
            serde_json::to_value(Borrowed { name, entry })
        })
    }

    /// `entry` (of snapshot `entries`) as JSON.
    pub fn entry(
        &self,
        entries: &Entries,
        entry: &DirectoryEntry,
    ) -> Result<Arc<Value>, serde_json::Error> {
        self.get(entries, Form::Entry, &entry.name, || {
            serde_json::to_value(entry)
        })
    }

    fn get(
        &self,
        entries: &Entries,
        form: Form,
        name: &str,
        make: impl FnOnce() -> Result<Value, serde_json::Error>,
    ) -> Result<Arc<Value>, serde_json::Error> {
        let index = form as usize;
        {
            let mut cache = self.lock();
            let current = cache
                .snapshot
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, entries));
            if !current {
                cache.snapshot = Some(entries.clone());
                cache.values.iter_mut().for_each(HashMap::clear);
            }
            if let Some(value) = cache.values[index].get(name) {
                return Ok(value.clone());
            }
        }
        let value = Arc::new(make()?);
        let mut cache = self.lock();
        let current = cache
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, entries));
        if current && cache.values[index].len() < MAX_ENTRY_JSON {
            cache.values[index].insert(name.to_owned(), value.clone());
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The wire form of [`ClientInfo`] the cache must match (checked in the tests).
#[cfg(test)]
fn reference(info: &ClientInfo) -> Value {
    serde_json::to_value(info).unwrap()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn snapshot(groups: &[&str]) -> Entries {
        let mut map = BTreeMap::new();
        for name in ["hd-1", "hd-2"] {
            let mut e = DirectoryEntry::new(name);
            e.groups = groups.iter().map(|g| (*g).to_owned()).collect();
            map.insert(name.to_owned(), e);
        }
        Arc::new(map)
    }

    #[test]
    fn values_equal_serde_and_are_made_once_per_snapshot() {
        let cache = EntryJson::default();
        let first = snapshot(&["a"]);
        let name: OperatorName = "hd-2".parse().unwrap();
        let info = ClientInfo {
            name: name.clone(),
            entry: first["hd-2"].clone(),
        };
        let a = cache.client(&first, &name, &first["hd-2"]).unwrap();
        assert_eq!(*a, reference(&info));
        let b = cache.client(&first, &name, &first["hd-2"]).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second call reuses the first's value"
        );
        let own = cache.entry(&first, &first["hd-1"]).unwrap();
        assert_eq!(*own, serde_json::to_value(&first["hd-1"]).unwrap());
        assert_ne!(*own, *a, "a client and an entry are cached apart");
        let next = snapshot(&["b"]);
        let c = cache.client(&next, &name, &next["hd-2"]).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c["entry"]["groups"], serde_json::json!(["b"]));
    }
}

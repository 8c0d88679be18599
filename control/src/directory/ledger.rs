//! Chain selection and the entries it yields (SPEC §3.5 `update`/`Append`, §3.7 client updates), sans-IO.
//!
//! Differences from the original, all invisible to a well-behaved peer: each record is verified once per rebuild
//! (a DFS carrying the valid prefix's signing pins, undone on backtrack) instead of once per chain; pins come from the
//! *valid* prefix (the original also read pins from skipped invalid records); no child lists leak across rebuilds;
//! and appends are checked completely *before* anything is stored, so a reset root that would not win is refused up
//! front instead of being stored and then reported as "new record not found".

use std::collections::{BTreeMap, HashMap, HashSet};

use super::entry::{DirectoryEntry, IntegrateError, integrate};
use super::record::SignedChangeRecord;
use super::verify::{RecordError, SigningPins, Verifier};

/// Most records a ledger holds (all stored records, every chain). A real directory has hundreds; 100 000 records of at
/// most 64 KiB bound a rebuild's memory and time.
pub const MAX_STORED_RECORDS: usize = 100_000;

/// Why a batch cannot be appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The batch does not extend the current tip.
    #[error("stale append, please try again")]
    Stale,
    /// A record with this hash is already stored (it would be invisible to chain selection).
    #[error("record {0} is already stored")]
    Duplicate(String),
    /// A new root (reset) whose `created_at` is not later than the current chain's root would not be selected.
    #[error("a reset root must be created after the current chain's root")]
    ResetNotNewer,
    /// The tip already has stored (invalid) children, so a new child would lose the tie-break of chain selection.
    #[error("the tip has stored descendants that do not verify; reset the directory to continue")]
    ShadowedTip,
    /// More than [`MAX_STORED_RECORDS`].
    #[error("the directory is full ({MAX_STORED_RECORDS} records)")]
    Full,
    /// A record does not verify ("you cannot append").
    #[error("you cannot append record {hash}: {source}")]
    Rejected {
        /// The record's hash.
        hash: String,
        /// Why.
        source: RecordError,
    },
    /// Applying a record to its entry failed.
    #[error(transparent)]
    Integrate(#[from] IntegrateError),
}

impl AppendError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Duplicate(_) => "duplicate",
            Self::ResetNotNewer => "reset_not_newer",
            Self::ShadowedTip => "shadowed_tip",
            Self::Full => "full",
            Self::Rejected { .. } => "rejected",
            Self::Integrate(_) => "integrate",
        }
    }
}

/// Why a directory client refuses records from the server (§3.7).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The first record neither extends the local tip nor starts a new chain.
    #[error("expected a new root record")]
    NotARoot,
    /// The new root is older than the local root.
    #[error("server tried to provide an outdated service directory")]
    Outdated,
    /// A served record does not verify; nothing was applied.
    #[error("record {hash} does not verify: {source}")]
    Invalid {
        /// The record's hash.
        hash: String,
        /// Why.
        source: RecordError,
    },
    /// More than [`MAX_STORED_RECORDS`].
    #[error("the directory is full ({MAX_STORED_RECORDS} records)")]
    Full,
    /// Applying a record to its entry failed.
    #[error(transparent)]
    Integrate(#[from] IntegrateError),
}

/// A batch that passed [`Ledger::check_append`]; store it, then hand it to [`Ledger::apply`].
#[derive(Debug, Clone)]
pub struct CheckedAppend {
    base_tip: Option<String>,
    records: Vec<SignedChangeRecord>,
}

impl CheckedAppend {
    /// The records to store, in order.
    pub fn records(&self) -> &[SignedChangeRecord] {
        &self.records
    }
}

/// The selected chain, its entries, and what chain selection needs to know about everything stored.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    chain: Vec<SignedChangeRecord>,
    positions: HashMap<String, usize>,
    entries: BTreeMap<String, DirectoryEntry>,
    pins: SigningPins,
    stored: HashSet<String>,
    parents: HashSet<String>,
}

impl Ledger {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last record of the selected chain (`getTip`).
    pub fn tip(&self) -> Option<&SignedChangeRecord> {
        self.chain.last()
    }

    /// The selected chain (verified records only), root first.
    pub fn chain(&self) -> &[SignedChangeRecord] {
        &self.chain
    }

    /// `getRecords{after}`: records strictly after `after`; `""` or an unknown hash gives the whole chain.
    pub fn records_after(&self, after: &str) -> &[SignedChangeRecord] {
        match self.positions.get(after) {
            Some(&i) => &self.chain[i + 1..],
            None => &self.chain,
        }
    }

    /// All entries, by name.
    pub fn entries(&self) -> &BTreeMap<String, DirectoryEntry> {
        &self.entries
    }

    /// One entry.
    pub fn entry(&self, name: &str) -> Option<&DirectoryEntry> {
        self.entries.get(name)
    }

    /// Number of stored records known (all chains).
    pub fn stored_len(&self) -> usize {
        self.stored.len()
    }

    /// Builds the ledger from every stored record, in storage order (see [`super::select`]).
    pub fn rebuild(
        records: Vec<SignedChangeRecord>,
        verifier: &Verifier,
    ) -> Result<Self, AppendError> {
        if records.len() > MAX_STORED_RECORDS {
            return Err(AppendError::Full);
        }
        let best = super::select::best_chain(&records, verifier);
        let mut ledger = Self::new();
        for record in &records {
            ledger.note_stored(record);
        }
        let mut records: Vec<Option<SignedChangeRecord>> = records.into_iter().map(Some).collect();
        for i in best {
            if let Some(record) = records[i].take() {
                ledger.push(record)?;
            }
        }
        tracing::info!(
            stored = ledger.stored.len(),
            chain = ledger.chain.len(),
            "directory chain selected"
        );
        Ok(ledger)
    }

    fn note_stored(&mut self, record: &SignedChangeRecord) {
        self.stored.insert(record.hash.clone());
        if !record.parent_hash.is_empty() {
            self.parents.insert(record.parent_hash.clone());
        }
    }

    fn reset_chain(&mut self) {
        self.chain.clear();
        self.positions.clear();
        self.entries.clear();
        self.pins = SigningPins::default();
    }

    /// Appends a verified record to the selected chain and its entry.
    fn push(&mut self, record: SignedChangeRecord) -> Result<(), IntegrateError> {
        let name = &record.record.name;
        let entry = self
            .entries
            .entry(name.clone())
            .or_insert_with(|| DirectoryEntry::new(name.clone()));
        integrate(entry, &record)?;
        self.pins.observe(&record);
        self.positions.insert(record.hash.clone(), self.chain.len());
        self.chain.push(record);
        Ok(())
    }

    /// Validates a whole batch before anything is stored: each record extends the tip (or the previous record of the
    /// batch), or is a new root created after the current root; no hash is stored twice; every record verifies
    /// against the prefix it extends.
    pub fn check_append(
        &self,
        batch: &[SignedChangeRecord],
        verifier: &Verifier,
    ) -> Result<CheckedAppend, AppendError> {
        if self.stored.len() + batch.len() > MAX_STORED_RECORDS {
            return Err(AppendError::Full);
        }
        let base_tip = self.tip().map(|r| r.hash.clone());
        let mut tip = base_tip.clone();
        let mut pins = self.pins.clone();
        let mut root_time = self.chain.first().map(|r| r.record.created_at.clone());
        let mut seen = HashSet::new();
        for record in batch {
            if self.stored.contains(&record.hash) || !seen.insert(record.hash.as_str()) {
                return Err(AppendError::Duplicate(record.hash.clone()));
            }
            if record.is_root() {
                if root_time
                    .as_ref()
                    .is_some_and(|t| !record.record.created_at.is_after(t))
                {
                    return Err(AppendError::ResetNotNewer);
                }
                pins = SigningPins::default();
                root_time = Some(record.record.created_at.clone());
            } else if tip.as_deref() != Some(record.parent_hash.as_str()) {
                return Err(AppendError::Stale);
            } else if self.parents.contains(&record.parent_hash) {
                return Err(AppendError::ShadowedTip);
            }
            verifier
                .verify_record(record, &pins)
                .map_err(|source| AppendError::Rejected {
                    hash: record.hash.clone(),
                    source,
                })?;
            pins.observe(record);
            tip = Some(record.hash.clone());
        }
        Ok(CheckedAppend {
            base_tip,
            records: batch.to_vec(),
        })
    }

    /// Applies a checked batch after the datastore acknowledged it. Fails with `Stale` if the ledger changed since
    /// the check.
    pub fn apply(&mut self, checked: CheckedAppend) -> Result<(), AppendError> {
        if self.tip().map(|r| &r.hash) != checked.base_tip.as_ref() {
            return Err(AppendError::Stale);
        }
        for record in checked.records {
            self.note_stored(&record);
            if record.is_root() {
                self.reset_chain();
            }
            self.push(record)?;
        }
        Ok(())
    }

    /// A directory client's incremental update with the records `getRecords{after: tip}` returned (§3.7): the first
    /// record must extend the local tip, or be a root not older than the local root (then the directory is replaced).
    /// Only the new records are verified; if any fails, nothing is applied.
    pub fn apply_remote(
        &mut self,
        records: Vec<SignedChangeRecord>,
        verifier: &Verifier,
    ) -> Result<(), RemoteError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let local_tip = self.tip().map_or("", |r| r.hash.as_str());
        let reset = first.parent_hash != local_tip;
        if reset {
            if !first.is_root() {
                return Err(RemoteError::NotARoot);
            }
            if self
                .chain
                .first()
                .is_some_and(|root| root.record.created_at.is_after(&first.record.created_at))
            {
                return Err(RemoteError::Outdated);
            }
        }
        let kept = if reset { 0 } else { self.chain.len() };
        if kept + records.len() > MAX_STORED_RECORDS {
            return Err(RemoteError::Full);
        }
        let mut pins = if reset {
            SigningPins::default()
        } else {
            self.pins.clone()
        };
        for record in &records {
            verifier
                .verify_record(record, &pins)
                .map_err(|source| RemoteError::Invalid {
                    hash: record.hash.clone(),
                    source,
                })?;
            pins.observe(record);
        }
        if reset {
            self.reset_chain();
            self.stored.clear();
            self.parents.clear();
        }
        for record in records {
            self.note_stored(&record);
            self.push(record)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;

//! Chain selection and the entries it yields (SPEC §3.5 `update`/`Append`, §3.7 client updates), sans-IO.
//!
//! Differences from the original, all invisible to a well-behaved peer: each record is verified once per rebuild
//! (a DFS carrying the valid prefix's signing pins, undone on backtrack) instead of once per chain; pins come from the
//! *valid* prefix (the original also read pins from skipped invalid records); no child lists leak across rebuilds;
//! and appends are checked completely *before* anything is stored, so a reset root that would not win is refused up
//! front instead of being stored and then reported as "new record not found".
//!
//! The directory client is stricter than the original's (which checked only the first served record's parent and
//! accepted a root as old as its own): every served record passes the sd's append rules (`ledger_rules.rs`), so a
//! lying sd cannot serve a reordered, thinned, duplicated or rolled-back chain; a refused update changes nothing.
//! An honest sd never serves such a chain, with one exception inherited from the original's chain selection: a
//! chain in which stored invalid records were skipped has a gap, and a client refuses it.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::entry::{DirectoryEntry, IntegrateError};
use super::record::SignedChangeRecord;
use super::verify::{RecordError, SigningPins, Verifier};

#[path = "ledger_rules.rs"]
mod rules;

pub use rules::ChainError;
use rules::History;

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

impl From<ChainError> for AppendError {
    fn from(error: ChainError) -> Self {
        match error {
            ChainError::Full => Self::Full,
            ChainError::Duplicate { hash, .. } => Self::Duplicate(hash),
            ChainError::ResetNotNewer { .. } => Self::ResetNotNewer,
            ChainError::Unlinked { .. } => Self::Stale,
            ChainError::ShadowedTip => Self::ShadowedTip,
            ChainError::Rejected { hash, source, .. } => Self::Rejected { hash, source },
        }
    }
}

/// Why a directory client refuses the records the server served (§3.7); the local directory is then unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The first record neither extends the local tip nor starts a new chain.
    #[error(
        "expected a new root record: the first served record {hash} neither extends the local tip nor starts a new chain"
    )]
    NotARoot {
        /// The first record's hash.
        hash: String,
    },
    /// A served root is not newer than the root of the chain it would replace.
    #[error("server tried to provide an outdated service directory: {0}")]
    Outdated(ChainError),
    /// The served records break another chain rule (reordered, thinned, duplicated, or not verifying).
    #[error("server served a chain that breaks the rules: {0}")]
    Chain(ChainError),
    /// Applying a record to its entry failed.
    #[error(transparent)]
    Integrate(#[from] IntegrateError),
}

impl RemoteError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotARoot { .. } => "not_a_root",
            Self::Outdated(_) => "outdated",
            Self::Chain(e) => e.kind(),
            Self::Integrate(_) => "integrate",
        }
    }
}

impl From<ChainError> for RemoteError {
    fn from(error: ChainError) -> Self {
        match error {
            ChainError::Unlinked {
                position: 0, hash, ..
            } => Self::NotARoot { hash },
            e @ ChainError::ResetNotNewer { .. } => Self::Outdated(e),
            e => Self::Chain(e),
        }
    }
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
        let chain = best.into_iter().filter_map(|i| records[i].take()).collect();
        ledger.extend(chain, History::Keep)?;
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

    /// Validates a whole batch before anything is stored (the rules of [`Ledger::apply_remote`] too): each record
    /// extends the tip (or the previous record of the batch), or is a new root created after the current root; no
    /// hash is stored twice; every record verifies against the prefix it extends.
    pub fn check_append(
        &self,
        batch: &[SignedChangeRecord],
        verifier: &Verifier,
    ) -> Result<CheckedAppend, AppendError> {
        self.check_chain(batch, verifier)?;
        Ok(CheckedAppend {
            base_tip: self.tip().map(|r| r.hash.clone()),
            records: batch.to_vec(),
        })
    }

    /// Applies a checked batch after the datastore acknowledged it, all or nothing. Fails with `Stale` if the ledger
    /// changed since the check.
    pub fn apply(&mut self, checked: CheckedAppend) -> Result<(), AppendError> {
        if self.tip().map(|r| &r.hash) != checked.base_tip.as_ref() {
            return Err(AppendError::Stale);
        }
        self.extend(checked.records, History::Keep)?;
        Ok(())
    }

    /// A directory client's update with the records `getRecords{after: tip}` returned (§3.7), under the sd's own
    /// append rules ([`Ledger::check_append`]) for every record: the first extends the local tip, each next one the
    /// record before it; a root only as a reset created after the current root (then the directory is replaced);
    /// no record twice; each verifies against the chain it extends. A reordered, thinned or replayed chain is
    /// refused, and then nothing is applied. Only the new records are verified.
    ///
    /// Unlike the original client, a root with the *same* `created_at` as the local root is refused: an honest sd
    /// never serves one (its own appends refuse it), while a lying one could use it to roll the chain back.
    pub fn apply_remote(
        &mut self,
        records: Vec<SignedChangeRecord>,
        verifier: &Verifier,
    ) -> Result<(), RemoteError> {
        if records.is_empty() {
            return Ok(());
        }
        self.check_chain(&records, verifier)?;
        self.extend(records, History::Forget)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ledger_remote_tests.rs"]
mod remote_tests;

//! The chain rules every batch of records passes before it changes a [`Ledger`], and the all-or-nothing way a passed
//! batch is applied. The same rules serve the sd (`submitRecords`, [`Ledger::check_append`]) and the operator's
//! directory client (what `getRecords` returned, [`Ledger::apply_remote`]), so a lying sd cannot hand a client a
//! chain the sd itself would have refused to store.

use std::collections::{BTreeMap, HashSet};

use super::{Ledger, MAX_STORED_RECORDS};
use crate::entry::{DirectoryEntry, IntegrateError, integrate};
use crate::record::SignedChangeRecord;
use crate::verify::{RecordError, SigningPins, Verifier};

/// A chain rule a batch breaks. `position` is the record's index in the batch.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The ledger's records plus the batch exceed [`MAX_STORED_RECORDS`].
    #[error("the directory is full ({MAX_STORED_RECORDS} records)")]
    Full,
    /// The record is already in the ledger, or earlier in the batch.
    #[error("record {hash} (position {position}) is already in the chain or earlier in the batch")]
    Duplicate {
        /// Index in the batch.
        position: usize,
        /// The record's hash.
        hash: String,
    },
    /// A root (empty parent) whose `created_at` is not later than the root of the chain it would replace.
    #[error(
        "root record {hash} (position {position}) is not created after the root of the chain it would replace"
    )]
    ResetNotNewer {
        /// Index in the batch.
        position: usize,
        /// The record's hash.
        hash: String,
    },
    /// The record's parent is not the record before it (or, first in the batch, the ledger's tip): the batch is
    /// reordered, thinned, or does not continue the ledger.
    #[error(
        "record {hash} (position {position}) does not extend the record before it: its parent is {parent:?}, \
         expected {expected:?}"
    )]
    Unlinked {
        /// Index in the batch.
        position: usize,
        /// The record's hash.
        hash: String,
        /// Its `parent_hash`.
        parent: String,
        /// The hash it had to extend (empty: the ledger has no tip).
        expected: String,
    },
    /// The record it extends already has stored (invalid) children, so a new child would lose chain selection's
    /// tie-break. Only an sd's ledger stores records outside its chain.
    #[error("the tip has stored descendants that do not verify")]
    ShadowedTip,
    /// The record does not verify (hash, signature, sd-admin signer, pinning) against the chain it extends.
    #[error("record {hash} (position {position}) does not verify: {source}")]
    Rejected {
        /// Index in the batch.
        position: usize,
        /// The record's hash.
        hash: String,
        /// Why.
        source: RecordError,
    },
}

impl ChainError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Duplicate { .. } => "duplicate",
            Self::ResetNotNewer { .. } => "reset_not_newer",
            Self::Unlinked { .. } => "unlinked",
            Self::ShadowedTip => "shadowed_tip",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// What a reset (a root in the batch) does to records the ledger knows outside the new chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum History {
    /// The sd: every stored record stays known (duplicate and shadowing checks see all of storage).
    Keep,
    /// A directory client: it holds only its chain, so a reset forgets the old one.
    Forget,
}

/// The entries a batch changes, already integrated, and where its last root (if any) starts the new chain.
struct Staged {
    reset_at: Option<usize>,
    entries: BTreeMap<String, DirectoryEntry>,
}

impl Ledger {
    /// Checks `batch` as a continuation of this ledger, record by record: no hash twice (in the ledger or the batch);
    /// a root only as a reset created after the current root (then signing pins start afresh); any other record's
    /// parent is the record before it (the ledger's tip for the first); each record verifies against the pins of the
    /// chain it extends. Nothing is changed.
    pub(super) fn check_chain(
        &self,
        batch: &[SignedChangeRecord],
        verifier: &Verifier,
    ) -> Result<(), ChainError> {
        if self.stored.len().saturating_add(batch.len()) > MAX_STORED_RECORDS {
            return Err(ChainError::Full);
        }
        let mut tip = self.tip().map_or("", |r| r.hash.as_str());
        let mut pins = self.pins.clone();
        let mut root_time = self.chain.first().map(|r| &r.record.created_at);
        let mut seen = HashSet::new();
        for (position, record) in batch.iter().enumerate() {
            let hash = || record.hash.clone();
            if self.stored.contains(&record.hash) || !seen.insert(record.hash.as_str()) {
                return Err(ChainError::Duplicate {
                    position,
                    hash: hash(),
                });
            }
            if record.is_root() {
                if root_time.is_some_and(|t| !record.record.created_at.is_after(t)) {
                    return Err(ChainError::ResetNotNewer {
                        position,
                        hash: hash(),
                    });
                }
                pins = SigningPins::default();
                root_time = Some(&record.record.created_at);
            } else if tip.is_empty() || record.parent_hash != tip {
                return Err(ChainError::Unlinked {
                    position,
                    hash: hash(),
                    parent: record.parent_hash.clone(),
                    expected: tip.to_owned(),
                });
            } else if self.parents.contains(&record.parent_hash) {
                return Err(ChainError::ShadowedTip);
            }
            verifier
                .verify_record(record, &pins)
                .map_err(|source| ChainError::Rejected {
                    position,
                    hash: hash(),
                    source,
                })?;
            pins.observe(record);
            tip = &record.hash;
        }
        Ok(())
    }

    /// Applies a checked batch: all of it, or (if a record does not fit its entry) none of it.
    pub(super) fn extend(
        &mut self,
        records: Vec<SignedChangeRecord>,
        history: History,
    ) -> Result<(), IntegrateError> {
        let staged = self.stage(&records)?;
        self.commit(records, staged, history);
        Ok(())
    }

    /// Integrates the records of the resulting chain into copies of the entries they touch; changes nothing.
    fn stage(&self, records: &[SignedChangeRecord]) -> Result<Staged, IntegrateError> {
        let reset_at = records.iter().rposition(SignedChangeRecord::is_root);
        let mut entries: BTreeMap<String, DirectoryEntry> = BTreeMap::new();
        for record in &records[reset_at.unwrap_or(0)..] {
            let name = &record.record.name;
            let entry = entries.entry(name.clone()).or_insert_with(|| {
                reset_at
                    .is_none()
                    .then(|| self.entries.get(name).cloned())
                    .flatten()
                    .unwrap_or_else(|| DirectoryEntry::new(name.clone()))
            });
            integrate(entry, record)?;
        }
        Ok(Staged { reset_at, entries })
    }

    /// Makes a staged batch the ledger's state; cannot fail.
    fn commit(&mut self, records: Vec<SignedChangeRecord>, staged: Staged, history: History) {
        if staged.reset_at.is_some() {
            self.reset_chain();
            if history == History::Forget {
                self.stored.clear();
                self.parents.clear();
            }
        }
        self.entries.extend(staged.entries);
        let start = staged.reset_at.unwrap_or(0);
        for (i, record) in records.into_iter().enumerate() {
            if i < start {
                if history == History::Keep {
                    self.note_stored(&record);
                }
                continue;
            }
            self.note_stored(&record);
            self.pins.observe(&record);
            self.positions.insert(record.hash.clone(), self.chain.len());
            self.chain.push(record);
        }
    }
}

//! Batches in the file datastore (sans-IO): how a batch is marked on disk, and the gate that
//! lets a reader see a batch only once all of it is there.
//!
//! The original's chunk layout (SPEC §3.5, [`super::chunk`]) has no batch field, and we keep it
//! byte for byte. The marker lives in the 16-byte chunk id, which the original fills with random
//! bytes and only compares for equality. Every chunk of entry `i` of a batch carries the id
//!
//! ```text
//! [batch nonce: 6 random bytes][i: u32 LE, bit 31 set on the batch's last entry][tag: 6 bytes]
//! tag = SHA-256("tandem datastore batch v1" || the first 10 bytes)[..6]
//! ```
//!
//! so a file we write still reads, entry for entry, with the original's reader. A batch is whole
//! when its entries 0, 1, ... have completed in order up to the one marked last.
//!
//! **Old files** (written before batches were marked, or by the original) have random ids: an id
//! whose tag does not check is a legacy entry, a batch of its own, released when it completes,
//! exactly as before. There is no file header: the format is decided per entry, so a file started
//! by the old code and continued by this one reads as legacy entries followed by marked batches. A
//! random id passes the tag check with probability 2^-48.

use sha2::{Digest, Sha256};

use super::chunk::CHUNK_ID_LEN;
use super::data_entry::{ENTRY_HEADER_LEN, MAX_ENTRY_LEN};

/// Random bytes identifying one batch: 6. Batches of our (single, locked) writer never overlap,
/// so the nonce only has to tell a batch from a torn one left open before it.
pub const BATCH_NONCE_LEN: usize = 6;

/// Largest batch, in encoded entry bytes: 128 MiB, twice `sd`'s largest accepted request body
/// (64 MiB), so every submission that passes the body limit fits. A reader holds at most one open
/// batch, so this bounds what it holds back; `append` refuses larger batches.
pub const MAX_BATCH_LEN: usize = 128 * 1024 * 1024;

const NONCE_END: usize = BATCH_NONCE_LEN;
const INDEX_END: usize = NONCE_END + 4;
const TAG_LEN: usize = CHUNK_ID_LEN - INDEX_END;
const LAST_BIT: u32 = 1 << 31;
const DOMAIN: &[u8] = b"tandem datastore batch v1";

// Every index of a batch that fits MAX_BATCH_LEN fits below LAST_BIT.
const _: () = assert!(MAX_BATCH_LEN / ENTRY_HEADER_LEN < LAST_BIT as usize);
// A batch may hold the largest entry.
const _: () = assert!(MAX_BATCH_LEN >= MAX_ENTRY_LEN);

/// The batch position carried in an entry's chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTag {
    /// The batch's random nonce.
    pub nonce: [u8; BATCH_NONCE_LEN],
    /// The entry's position in the batch, from 0; below 2^31.
    pub index: u32,
    /// Whether this is the batch's last entry.
    pub last: bool,
}

fn tag_of(head: &[u8]) -> [u8; TAG_LEN] {
    let digest = Sha256::new()
        .chain_update(DOMAIN)
        .chain_update(head)
        .finalize();
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(&digest[..TAG_LEN]);
    tag
}

impl BatchTag {
    /// The chunk id of this entry. `index` must be below 2^31 (a batch within
    /// [`MAX_BATCH_LEN`] always is).
    pub fn chunk_id(&self) -> [u8; CHUNK_ID_LEN] {
        debug_assert!(
            self.index < LAST_BIT,
            "batch index {} too large",
            self.index
        );
        let word = self.index | if self.last { LAST_BIT } else { 0 };
        let mut id = [0; CHUNK_ID_LEN];
        id[..NONCE_END].copy_from_slice(&self.nonce);
        id[NONCE_END..INDEX_END].copy_from_slice(&word.to_le_bytes());
        let tag = tag_of(&id[..INDEX_END]);
        id[INDEX_END..].copy_from_slice(&tag);
        id
    }

    /// The tag in a chunk id, or `None` for a legacy (random) id.
    pub fn parse(id: &[u8]) -> Option<Self> {
        let id: &[u8; CHUNK_ID_LEN] = id.try_into().ok()?;
        let (head, tag) = id.split_at(INDEX_END);
        if tag_of(head) != tag {
            return None;
        }
        let mut nonce = [0; BATCH_NONCE_LEN];
        nonce.copy_from_slice(&head[..NONCE_END]);
        let word = u32::from_le_bytes([head[6], head[7], head[8], head[9]]);
        Some(Self {
            nonce,
            index: word & !LAST_BIT,
            last: word & LAST_BIT != 0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenBatch<T> {
    nonce: [u8; BATCH_NONCE_LEN],
    next: u32,
    held: Vec<T>,
    bytes: usize,
}

/// Holds back the completed entries of the batch being read until its last entry completes.
/// At most one batch is open (our writer is exclusive and writes one batch at a time), holding at
/// most [`MAX_BATCH_LEN`] bytes. `T` is what is held per entry: the entry itself when reading, a
/// unit marker when only checking the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchGate<T> {
    open: Option<OpenBatch<T>>,
}

impl<T> Default for BatchGate<T> {
    fn default() -> Self {
        Self { open: None }
    }
}

impl<T> BatchGate<T> {
    /// Whether a batch has started and not completed.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Takes one completed entry (`len` encoded bytes) with its batch tag (`None`: a legacy entry).
    /// Appends what it releases to `out`, in batch order, and returns whether it released a
    /// whole batch (a legacy entry is one). An entry that does not continue the open batch is
    /// dropped (logged), and so is that batch when the entry claims to be part of it: a batch is
    /// released whole or never.
    pub fn push(&mut self, tag: Option<BatchTag>, item: T, len: usize, out: &mut Vec<T>) -> bool {
        let Some(tag) = tag else {
            out.push(item);
            return true;
        };
        if tag.index == 0 {
            if let Some(old) = self.open.take() {
                tracing::warn!(
                    held = old.held.len(),
                    "dropping a batch that never completed"
                );
            }
            if tag.last {
                out.push(item);
                return true;
            }
            self.open = Some(OpenBatch {
                nonce: tag.nonce,
                next: 1,
                held: vec![item],
                bytes: len,
            });
            return self.enforce_bound();
        }
        let Some(open) = self
            .open
            .as_mut()
            .filter(|o| o.nonce == tag.nonce && o.next == tag.index)
        else {
            let broken = self.open.take_if(|o| o.nonce == tag.nonce);
            tracing::warn!(
                index = tag.index,
                dropped_batch = broken.is_some(),
                "dropping an entry that does not continue its batch"
            );
            return false;
        };
        open.held.push(item);
        open.next += 1;
        open.bytes = open.bytes.saturating_add(len);
        if !tag.last {
            return self.enforce_bound();
        }
        if let Some(done) = self.open.take() {
            out.extend(done.held);
        }
        true
    }

    /// Drops the open batch once it exceeds [`MAX_BATCH_LEN`] (not one we wrote). Returns false
    /// (nothing released), for `push`.
    fn enforce_bound(&mut self) -> bool {
        if let Some(dropped) = self.open.take_if(|o| o.bytes > MAX_BATCH_LEN) {
            tracing::warn!(
                bytes = dropped.bytes,
                "dropping a batch larger than the batch bound"
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(nonce: u8, index: u32, last: bool) -> Option<BatchTag> {
        Some(BatchTag {
            nonce: [nonce; BATCH_NONCE_LEN],
            index,
            last,
        })
    }

    #[test]
    fn chunk_ids_round_trip_and_a_changed_byte_is_legacy() {
        let t = BatchTag {
            nonce: [1, 2, 3, 4, 5, 6],
            index: 7,
            last: true,
        };
        let id = t.chunk_id();
        assert_eq!(&id[..10], &[1, 2, 3, 4, 5, 6, 7, 0, 0, 0x80]);
        assert_eq!(BatchTag::parse(&id), Some(t));
        for i in 0..CHUNK_ID_LEN {
            let mut bad = id;
            bad[i] ^= 1;
            assert_eq!(BatchTag::parse(&bad), None, "byte {i} changed");
        }
        assert_eq!(BatchTag::parse(&id[..15]), None, "ids of another length");
    }

    #[test]
    fn a_batch_is_released_whole_when_its_last_entry_arrives() {
        let mut g = BatchGate::default();
        let mut out = Vec::new();
        assert!(!g.push(tag(1, 0, false), "a", 1, &mut out));
        assert!(g.push(None, "legacy", 1, &mut out), "legacy entries pass");
        assert!(!g.push(tag(1, 1, false), "b", 1, &mut out));
        assert_eq!(out, vec!["legacy"]);
        assert!(g.push(tag(1, 2, true), "c", 1, &mut out));
        assert_eq!(out, vec!["legacy", "a", "b", "c"]);
        assert!(!g.is_open());
        assert!(g.push(tag(2, 0, true), "single", 1, &mut out));
        assert_eq!(out.last(), Some(&"single"));
    }

    #[test]
    fn a_new_batch_drops_one_that_never_completed() {
        let mut g = BatchGate::default();
        let mut out = Vec::new();
        g.push(tag(1, 0, false), "torn", 1, &mut out);
        g.push(tag(2, 0, false), "x", 1, &mut out);
        assert!(g.push(tag(2, 1, true), "y", 1, &mut out));
        assert_eq!(out, vec!["x", "y"]);
    }

    #[test]
    fn entries_out_of_order_or_without_their_start_are_dropped() {
        let mut g = BatchGate::default();
        let mut out = Vec::new();
        assert!(!g.push(tag(1, 1, true), "orphan", 1, &mut out));
        g.push(tag(2, 0, false), "a", 1, &mut out);
        assert!(!g.push(tag(3, 1, true), "other batch", 1, &mut out));
        assert!(
            g.is_open(),
            "another batch's orphan leaves the open one alone"
        );
        assert!(!g.push(tag(2, 2, true), "skips 1", 1, &mut out));
        assert!(!g.is_open(), "a gap drops the batch");
        assert!(!g.push(tag(2, 1, true), "late", 1, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn a_batch_over_the_bound_is_dropped() {
        let mut g = BatchGate::default();
        let mut out = Vec::new();
        g.push(tag(1, 0, false), 0, MAX_BATCH_LEN, &mut out);
        assert!(g.is_open(), "exactly the bound is allowed");
        g.push(tag(1, 1, false), 1, 1, &mut out);
        assert!(!g.is_open());
        assert!(!g.push(tag(1, 2, true), 2, 1, &mut out));
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn random_ids_are_legacy(id in proptest::array::uniform16(any::<u8>())) {
            prop_assert_eq!(BatchTag::parse(&id), None);
        }

        #[test]
        fn tags_round_trip(nonce in proptest::array::uniform6(any::<u8>()),
                           index in 0..LAST_BIT, last: bool) {
            let t = BatchTag { nonce, index, last };
            prop_assert_eq!(BatchTag::parse(&t.chunk_id()), Some(t));
        }
    }
}

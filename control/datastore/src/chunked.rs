//! From entries to file bytes and from chunks back to whole batches (sans-IO): what the file
//! datastore does with the bytes it writes and reads, without touching the file.

use super::batch::{BATCH_NONCE_LEN, BatchGate, BatchTag, MAX_BATCH_LEN};
use super::chunk::{self, Chunk};
use super::data_entry::DataEntry;
use super::error::DatastoreError;
use super::reassemble::Reassembler;

/// Encodes `entries` as one marked batch of chunks (see [`super::batch`]), ready for one append.
/// Fails when an entry cannot be encoded or the batch exceeds [`MAX_BATCH_LEN`].
pub fn encode_batch(entries: &[DataEntry]) -> Result<Vec<u8>, DatastoreError> {
    let len = entries.iter().map(DataEntry::encoded_len).sum::<usize>();
    check_batch_len(len)?;
    let nonce: [u8; BATCH_NONCE_LEN] = rand::random();
    let mut out = Vec::with_capacity(len + len / 8 + 32 * entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let bytes = entry.encode()?;
        let tag = BatchTag {
            nonce,
            // MAX_BATCH_LEN / 4 (the smallest entry) is below 2^31 (asserted in `batch`).
            index: u32::try_from(index).map_err(|_| DatastoreError::BatchTooLarge {
                len,
                max: MAX_BATCH_LEN,
            })?,
            last: index + 1 == entries.len(),
        };
        chunk::split_into(&bytes, &tag.chunk_id(), &mut out)
            .map_err(|e| DatastoreError::Config(format!("cannot split entry: {e}")))?;
    }
    Ok(out)
}

fn check_batch_len(len: usize) -> Result<(), DatastoreError> {
    if len > MAX_BATCH_LEN {
        return Err(DatastoreError::BatchTooLarge {
            len,
            max: MAX_BATCH_LEN,
        });
    }
    Ok(())
}

/// What a [`Decoder`] holds per entry of an open batch when only checking a file: nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked;

impl From<DataEntry> for Checked {
    fn from(_: DataEntry) -> Self {
        Self
    }
}

/// Turns chunks, in file order, into whole batches: reassembles entries (interleaving tolerated)
/// and holds the entries of a batch back until it is complete. The state between two reads of a
/// file (a [`super::Cursor`]'s `pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder<T> {
    chunks: Reassembler,
    batches: BatchGate<T>,
}

impl<T> Default for Decoder<T> {
    fn default() -> Self {
        Self {
            chunks: Reassembler::default(),
            batches: BatchGate::default(),
        }
    }
}

impl<T: From<DataEntry>> Decoder<T> {
    /// Takes the chunk that ends at file offset `end`; appends the entries it releases to `out`
    /// and returns whether it completed a batch (or a legacy entry). On error the decoder may be
    /// partly advanced: callers decode with a copy and keep it only on success.
    pub fn push(
        &mut self,
        chunk: Chunk,
        end: u64,
        out: &mut Vec<T>,
    ) -> Result<bool, DatastoreError> {
        // An entry completes on its last chunk; only that chunk's tag matters.
        let tag = (chunk.index.checked_add(1) == Some(chunk.chunks))
            .then(|| BatchTag::parse(&chunk.id))
            .flatten();
        let Some(bytes) = self
            .chunks
            .push(chunk)
            .map_err(|e| corrupt(end, e.to_string()))?
        else {
            return Ok(false);
        };
        let entry = DataEntry::decode(&bytes).map_err(|e| corrupt(end, e.to_string()))?;
        Ok(self.batches.push(tag, T::from(entry), bytes.len(), out))
    }
}

fn corrupt(at: u64, reason: String) -> DatastoreError {
    DatastoreError::Corrupt { at, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{Tail, scan};

    fn entry(n: u8, len: usize) -> DataEntry {
        DataEntry {
            type_: 1,
            id: vec![n; 16],
            data: vec![n; len],
        }
    }

    fn decode_all(bytes: &[u8], d: &mut Decoder<DataEntry>) -> (Vec<DataEntry>, usize) {
        let s = scan(bytes);
        let mut out = Vec::new();
        let mut batches = 0;
        for (c, end) in s.chunks {
            batches += usize::from(d.push(c, end as u64, &mut out).unwrap());
        }
        (out, batches)
    }

    #[test]
    fn a_batch_round_trips_with_one_nonce_and_marked_last_entry() {
        let batch = vec![entry(1, 10), entry(2, 1000), entry(3, 0)];
        let bytes = encode_batch(&batch).unwrap();
        let s = scan(&bytes);
        assert_eq!(s.tail, Tail::Clean);
        let tags: Vec<BatchTag> = s
            .chunks
            .iter()
            .map(|(c, _)| BatchTag::parse(&c.id).unwrap())
            .collect();
        assert!(tags.iter().all(|t| t.nonce == tags[0].nonce));
        let marks: Vec<(u32, bool)> = tags.iter().map(|t| (t.index, t.last)).collect();
        let one = (1, false);
        assert_eq!(marks, [(0, false), one, one, one, one, one, (2, true)]);
        let (out, batches) = decode_all(&bytes, &mut Decoder::default());
        assert_eq!((out, batches), (batch, 1));
    }

    #[test]
    fn a_batch_split_across_reads_is_released_only_at_its_end() {
        let batch = vec![entry(1, 10), entry(2, 1000), entry(3, 0)];
        let bytes = encode_batch(&batch).unwrap();
        let cut = scan(&bytes).chunks[2].1; // after entry 1 and part of entry 2
        let mut d = Decoder::default();
        assert_eq!(decode_all(&bytes[..cut], &mut d), (vec![], 0));
        assert_eq!(decode_all(&bytes[cut..], &mut d), (batch, 1));
    }

    #[test]
    fn batches_over_the_bound_are_refused() {
        check_batch_len(MAX_BATCH_LEN).unwrap();
        let err = check_batch_len(MAX_BATCH_LEN + 1).unwrap_err();
        assert_eq!(err.kind(), "batch", "{err}");
    }

    #[test]
    fn corrupt_entries_report_their_file_offset() {
        let mut bytes = Vec::new();
        chunk::split_into(&[9, 9, 9, 9], &[1; 16], &mut bytes).unwrap();
        let (c, end) = scan(&bytes).chunks.remove(0);
        let err = Decoder::<Checked>::default()
            .push(c, 100 + end as u64, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(err, DatastoreError::Corrupt { at, .. } if at == 100 + end as u64),
            "{err}"
        );
    }
}

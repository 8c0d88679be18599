//! From file bytes to entries and back (sans-IO): what the file datastore does with the bytes it
//! reads and writes, without touching the file.

use super::chunk::{self, CHUNK_ID_LEN, Tail};
use super::entry::DataEntry;
use super::error::DatastoreError;
use super::reassemble::Reassembler;

/// Encodes `entries` as chunks, one random chunk id per entry, ready for one append.
pub fn encode_batch(entries: &[DataEntry]) -> Result<Vec<u8>, DatastoreError> {
    let mut out = Vec::new();
    for entry in entries {
        let bytes = entry.encode()?;
        let chunk_id: [u8; CHUNK_ID_LEN] = rand::random();
        chunk::split_into(&bytes, &chunk_id, &mut out)
            .map_err(|e| DatastoreError::Config(format!("cannot split entry: {e}")))?;
    }
    Ok(out)
}

/// Entries decoded from a buffer read at file offset `base`.
#[derive(Debug)]
pub struct Decoded {
    /// Complete entries, in completion order.
    pub entries: Vec<DataEntry>,
    /// Bytes of the buffer that were whole chunks (the cursor advances by this much).
    pub consumed: usize,
    /// Bytes after the last whole chunk (a torn tail), ignored.
    pub torn: usize,
    /// Offset in the buffer just after the last chunk that completed an entry.
    pub last_complete_end: usize,
}

/// Decodes the chunks in `buf` (read at file offset `base`, starting at a chunk boundary),
/// continuing the incomplete entries in `pending`. On error `pending` may be partly advanced:
/// callers pass a copy and keep it only on success.
pub fn decode(buf: &[u8], base: u64, pending: &mut Reassembler) -> Result<Decoded, DatastoreError> {
    let scan = chunk::scan(buf);
    let torn = match scan.tail {
        Tail::Clean => 0,
        Tail::Torn { len } => len,
        Tail::Corrupt { offset, version } => {
            return Err(corrupt(
                base,
                offset,
                format!("chunk version {version}, expected 1"),
            ));
        }
    };
    let mut entries = Vec::new();
    let mut last_complete_end = 0;
    for (chunk, end) in scan.chunks {
        let Some(bytes) = pending
            .push(chunk)
            .map_err(|e| corrupt(base, end, e.to_string()))?
        else {
            continue;
        };
        entries.push(DataEntry::decode(&bytes).map_err(|e| corrupt(base, end, e.to_string()))?);
        last_complete_end = end;
    }
    Ok(Decoded {
        entries,
        consumed: scan.consumed,
        torn,
        last_complete_end,
    })
}

fn corrupt(base: u64, offset: usize, reason: String) -> DatastoreError {
    DatastoreError::Corrupt {
        at: base + offset as u64,
        reason,
    }
}

/// Where a store file's valid data ends: just after the last chunk that completed an entry.
/// Everything after it is a torn chunk or chunks of entries that never completed (a crash while
/// appending), which opening for append removes so that new chunks start at a chunk boundary.
/// (Opening scans in pages, see [`super::recover`]; this whole-buffer form is its reference in
/// tests.)
#[cfg(test)]
pub fn recovery_point(whole_file: &[u8]) -> Result<usize, DatastoreError> {
    Ok(decode(whole_file, 0, &mut Reassembler::default())?.last_complete_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, len: usize) -> DataEntry {
        DataEntry {
            type_: 1,
            id: vec![n; 16],
            data: vec![n; len],
        }
    }

    #[test]
    fn batch_round_trips_and_resumes_incrementally() {
        let batch = vec![entry(1, 10), entry(2, 1000), entry(3, 0)];
        let bytes = encode_batch(&batch).unwrap();
        let mut pending = Reassembler::default();
        let all = decode(&bytes, 0, &mut pending).unwrap();
        assert_eq!(all.entries, batch);
        assert_eq!(
            (all.consumed, all.torn, all.last_complete_end),
            (bytes.len(), 0, bytes.len())
        );

        // Cut inside the multi-chunk entry: the first read holds it pending, the second completes it.
        let cut = 300;
        let mut pending = Reassembler::default();
        let first = decode(&bytes[..cut], 0, &mut pending).unwrap();
        assert_eq!(first.entries, vec![entry(1, 10)]);
        let second = decode(
            &bytes[first.consumed..],
            first.consumed as u64,
            &mut pending,
        )
        .unwrap();
        assert_eq!(second.entries, vec![entry(2, 1000), entry(3, 0)]);
    }

    #[test]
    fn recovery_point_drops_incomplete_entries_and_torn_chunks() {
        let first = encode_batch(&[entry(1, 10)]).unwrap();
        let second = encode_batch(&[entry(2, 600)]).unwrap();
        let mut file = first.clone();
        file.extend_from_slice(&second[..second.len() - 5]);
        assert_eq!(recovery_point(&file).unwrap(), first.len());
        file.truncate(first.len());
        assert_eq!(recovery_point(&file).unwrap(), first.len());
        assert_eq!(recovery_point(&[]).unwrap(), 0);
    }

    #[test]
    fn corrupt_bytes_report_their_file_offset() {
        let mut file = encode_batch(&[entry(1, 10)]).unwrap();
        let good = file.len();
        file.extend_from_slice(&[7, 7, 7]);
        let err = decode(&file, 100, &mut Reassembler::default()).unwrap_err();
        assert!(
            matches!(err, DatastoreError::Corrupt { at, .. } if at == 100 + good as u64),
            "{err}"
        );
    }
}

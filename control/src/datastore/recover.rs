//! Reading a store file once, from the start, in bounded pages: every complete entry goes to a
//! visitor, and the scan finds where valid data ends (the recovery point that opening truncates
//! to). Opening a file store is this one pass; a caller that wants the entries (the proxies'
//! announcement tables) gets them from the same pass instead of reading the file a second time.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::chunked;
use super::entry::DataEntry;
use super::error::DatastoreError;
use super::reassemble::Reassembler;

/// Bytes read at a time when scanning a file: 1 MiB. It must exceed the longest chunk the format
/// can express ([`MAX_CHUNK_LEN`]) so that every page but a torn tail holds a whole chunk; the
/// scan's memory is one page plus the reassembler's bounded pending entries.
pub const READ_PAGE_BYTES: usize = 1024 * 1024;

/// Longest chunk the format can express: 7 fixed bytes, a `u16` id, a `u16` length, `u16` data.
const MAX_CHUNK_LEN: usize = 7 + u16::MAX as usize + 2 + u16::MAX as usize;

const _: () = assert!(READ_PAGE_BYTES > MAX_CHUNK_LEN);

/// What one pass over a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Offset just after the last chunk that completed an entry: valid data ends here.
    pub valid: u64,
    /// Complete entries before `valid` (each was handed to the visitor).
    pub entries: u64,
}

/// Scans the first `len` bytes of `file` page by page, handing each complete entry to `visit` in
/// completion order (the order `read_new` returns them).
pub fn scan_file(
    file: &File,
    path: &Path,
    len: u64,
    visit: &mut dyn FnMut(DataEntry),
) -> Result<Scanned, DatastoreError> {
    let mut pending = Reassembler::default();
    let mut page = Vec::with_capacity(READ_PAGE_BYTES.min(to_usize(len)?));
    let mut position = 0u64;
    let mut scanned = Scanned {
        valid: 0,
        entries: 0,
    };
    while position < len {
        let n = to_usize(len - position)?.min(READ_PAGE_BYTES);
        read_at(file, path, position, n, &mut page)?;
        let decoded = chunked::decode(&page, position, &mut pending)?;
        if !decoded.entries.is_empty() {
            scanned.valid = position + decoded.last_complete_end as u64;
        }
        for entry in decoded.entries {
            scanned.entries += 1;
            visit(entry);
        }
        if decoded.consumed == 0 {
            // No whole chunk here: a torn chunk (shorter than a page, so this page reached the
            // end) or zero fill, which must run to the end of the file.
            zeros_to_end(file, path, position + n as u64, len, &mut page)?;
            break;
        }
        position += decoded.consumed as u64;
    }
    Ok(scanned)
}

fn to_usize(n: u64) -> Result<usize, DatastoreError> {
    usize::try_from(n).map_err(|_| DatastoreError::Config("store file too large".into()))
}

fn read_at(
    file: &File,
    path: &Path,
    position: u64,
    n: usize,
    page: &mut Vec<u8>,
) -> Result<(), DatastoreError> {
    page.resize(n, 0);
    file.read_exact_at(page, position)
        .map_err(|source| DatastoreError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        })
}

/// Checks that the bytes from `from` to `len` are zero (a file extended but never written).
fn zeros_to_end(
    file: &File,
    path: &Path,
    mut from: u64,
    len: u64,
    page: &mut Vec<u8>,
) -> Result<(), DatastoreError> {
    while from < len {
        let n = to_usize(len - from)?.min(READ_PAGE_BYTES);
        read_at(file, path, from, n, page)?;
        if let Some(i) = page.iter().position(|&b| b != 0) {
            return Err(DatastoreError::Corrupt {
                at: from + i as u64,
                reason: "data after zero fill".into(),
            });
        }
        from += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn entry(n: u8, len: usize) -> DataEntry {
        DataEntry {
            type_: 2,
            id: vec![n; 16],
            data: vec![n; len],
        }
    }

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        (f, bytes.len() as u64)
    }

    fn scan(bytes: &[u8]) -> Result<(Scanned, Vec<DataEntry>), DatastoreError> {
        let (f, len) = file_with(bytes);
        let mut seen = Vec::new();
        let s = scan_file(f.as_file(), f.path(), len, &mut |e| seen.push(e))?;
        Ok((s, seen))
    }

    #[test]
    fn a_multi_page_file_is_read_once_with_every_entry_in_order() {
        // ~3.5 pages of entries of mixed sizes, some spanning page boundaries.
        let entries: Vec<_> = (0..40u8).map(|n| entry(n, 90_000 + n as usize)).collect();
        let bytes = chunked::encode_batch(&entries).unwrap();
        assert!(bytes.len() > 3 * READ_PAGE_BYTES);
        let (s, seen) = scan(&bytes).unwrap();
        assert_eq!(seen, entries);
        assert_eq!(s.entries, 40);
        assert_eq!(s.valid, bytes.len() as u64);
        assert_eq!(s.valid, chunked::recovery_point(&bytes).unwrap() as u64);
    }

    #[test]
    fn a_torn_tail_or_zero_fill_ends_the_valid_data() {
        let good = chunked::encode_batch(&[entry(1, 10), entry(2, 600)]).unwrap();
        let next = chunked::encode_batch(&[entry(3, 600)]).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(&next[..next.len() - 7]);
        let (s, seen) = scan(&torn).unwrap();
        assert_eq!((s.valid, s.entries), (good.len() as u64, 2));
        assert_eq!(seen.len(), 2);

        let mut zero_fill = good.clone();
        zero_fill.extend(std::iter::repeat_n(0u8, 2 * READ_PAGE_BYTES + 5));
        let (s, _) = scan(&zero_fill).unwrap();
        assert_eq!(s.valid, good.len() as u64);

        zero_fill.push(9);
        let err = scan(&zero_fill).unwrap_err();
        assert_eq!(err.kind(), "corrupt", "{err}");
        assert_eq!(
            scan(&[]).unwrap().0,
            Scanned {
                valid: 0,
                entries: 0
            }
        );
    }
}

//! Reassembling entries from chunks that may interleave with other entries' chunks (sans-IO).
//!
//! Chunks of one entry appear in index order but other entries' chunks may sit between them (the
//! original allows several unlocked writers per file). An entry is complete, and is yielded, when
//! its last chunk arrives, so entries come out in the order they completed: the same order whether
//! the file is read in one go or incrementally. Entries whose chunks never all arrive (a writer
//! that crashed) stay pending, bounded by [`MAX_PENDING_ENTRIES`] and [`MAX_PENDING_BYTES`].

use std::collections::VecDeque;

use thiserror::Error;

use super::chunk::Chunk;
use super::data_entry::MAX_ENTRY_LEN;

/// Incomplete entries kept while reading: 64. Our own writer holds an exclusive lock and leaves at
/// most one incomplete entry per crash (which the next open truncates); 64 leaves room for files
/// from several unlocked original writers. Past it the oldest pending entry is dropped (logged).
pub const MAX_PENDING_ENTRIES: usize = 64;

/// Data bytes of incomplete entries kept while reading: 16 MiB (two maximal entries). Past it the
/// oldest pending entries are dropped (logged).
pub const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// Chunks that contradict each other.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReassembleError {
    /// A chunk says the entry has 0 chunks, or an index not below the count.
    #[error("chunk {index} of {chunks} is impossible")]
    BadIndex {
        /// The chunk's index.
        index: u16,
        /// The chunk's count.
        chunks: u16,
    },
    /// A chunk does not continue its entry (wrong index or count).
    #[error("chunk {index} of {chunks} does not follow chunk {expected} of {pending_chunks}")]
    OutOfOrder {
        /// The chunk's index.
        index: u16,
        /// The chunk's count.
        chunks: u16,
        /// The index the entry expected next.
        expected: u16,
        /// The count the entry's first chunk declared.
        pending_chunks: u16,
    },
    /// The reassembled entry exceeds [`MAX_ENTRY_LEN`].
    #[error("entry exceeds {MAX_ENTRY_LEN} bytes")]
    TooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    id: Vec<u8>,
    chunks: u16,
    next: u16,
    data: Vec<u8>,
}

/// Incomplete entries between reads. Cheap to clone when (as usual) nothing is pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reassembler {
    pending: VecDeque<Pending>,
    pending_bytes: usize,
}

impl Reassembler {
    /// How many entries are waiting for more chunks.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds one chunk; returns the encoded entry when this chunk completes it. A non-first chunk of
    /// an unknown entry (its start was dropped by the bounds) is ignored.
    pub fn push(&mut self, chunk: Chunk) -> Result<Option<Vec<u8>>, ReassembleError> {
        if chunk.chunks == 0 || chunk.index >= chunk.chunks {
            return Err(ReassembleError::BadIndex {
                index: chunk.index,
                chunks: chunk.chunks,
            });
        }
        let Some(pos) = self.pending.iter().position(|p| p.id == chunk.id) else {
            return self.start(chunk);
        };
        let p = &mut self.pending[pos];
        if chunk.index != p.next || chunk.chunks != p.chunks {
            return Err(ReassembleError::OutOfOrder {
                index: chunk.index,
                chunks: chunk.chunks,
                expected: p.next,
                pending_chunks: p.chunks,
            });
        }
        if p.data.len() + chunk.data.len() > MAX_ENTRY_LEN {
            return Err(ReassembleError::TooLarge);
        }
        p.data.extend_from_slice(&chunk.data);
        p.next += 1;
        self.pending_bytes += chunk.data.len();
        if p.next < p.chunks {
            self.enforce_bounds();
            return Ok(None);
        }
        let done = self
            .pending
            .remove(pos)
            .expect("pos was found in pending just above");
        self.pending_bytes -= done.data.len();
        Ok(Some(done.data))
    }

    fn start(&mut self, chunk: Chunk) -> Result<Option<Vec<u8>>, ReassembleError> {
        if chunk.index != 0 {
            tracing::warn!(
                index = chunk.index,
                chunks = chunk.chunks,
                "ignoring a chunk whose entry start is unknown"
            );
            return Ok(None);
        }
        if chunk.data.len() > MAX_ENTRY_LEN {
            return Err(ReassembleError::TooLarge);
        }
        if chunk.chunks == 1 {
            return Ok(Some(chunk.data));
        }
        self.pending_bytes += chunk.data.len();
        self.pending.push_back(Pending {
            id: chunk.id,
            chunks: chunk.chunks,
            next: 1,
            data: chunk.data,
        });
        self.enforce_bounds();
        Ok(None)
    }

    fn enforce_bounds(&mut self) {
        while self.pending.len() > MAX_PENDING_ENTRIES || self.pending_bytes > MAX_PENDING_BYTES {
            let Some(old) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= old.data.len();
            tracing::warn!(
                chunks = old.chunks,
                received = old.next,
                "dropping an incomplete entry (pending bound)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u8, chunks: u16, index: u16, data: &[u8]) -> Chunk {
        Chunk {
            chunks,
            index,
            id: vec![id; 16],
            data: data.to_vec(),
        }
    }

    #[test]
    fn interleaved_entries_complete_in_completion_order() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(c(1, 2, 0, b"a1")).unwrap(), None);
        assert_eq!(r.push(c(2, 2, 0, b"b1")).unwrap(), None);
        assert_eq!(r.push(c(3, 1, 0, b"c")).unwrap(), Some(b"c".to_vec()));
        assert_eq!(r.push(c(2, 2, 1, b"b2")).unwrap(), Some(b"b1b2".to_vec()));
        assert_eq!(r.pending(), 1);
        assert_eq!(r.push(c(1, 2, 1, b"a2")).unwrap(), Some(b"a1a2".to_vec()));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn contradictions_are_errors() {
        let mut r = Reassembler::default();
        assert_eq!(
            r.push(c(1, 0, 0, b"")),
            Err(ReassembleError::BadIndex {
                index: 0,
                chunks: 0
            })
        );
        assert_eq!(
            r.push(c(1, 2, 2, b"")),
            Err(ReassembleError::BadIndex {
                index: 2,
                chunks: 2
            })
        );
        r.push(c(1, 3, 0, b"x")).unwrap();
        assert!(matches!(
            r.push(c(1, 3, 2, b"z")),
            Err(ReassembleError::OutOfOrder { expected: 1, .. })
        ));
        assert!(matches!(
            r.push(c(1, 4, 1, b"z")),
            Err(ReassembleError::OutOfOrder {
                pending_chunks: 3,
                ..
            })
        ));
    }

    #[test]
    fn orphan_chunks_are_ignored() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(c(9, 3, 1, b"lost")).unwrap(), None);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn pending_entries_are_bounded() {
        let mut r = Reassembler::default();
        for i in 0..=MAX_PENDING_ENTRIES {
            let mut chunk = c(0, 2, 0, b"x");
            chunk.id = (i as u32).to_le_bytes().to_vec();
            r.push(chunk).unwrap();
        }
        assert_eq!(r.pending(), MAX_PENDING_ENTRIES);
        // The oldest (id 0) was dropped: its second chunk is now an orphan.
        let mut second = c(0, 2, 1, b"y");
        second.id = 0u32.to_le_bytes().to_vec();
        assert_eq!(r.push(second).unwrap(), None);
    }
}

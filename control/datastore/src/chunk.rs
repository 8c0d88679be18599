//! The file datastore's chunk format (sans-IO): splitting an encoded entry into chunks and
//! scanning a byte buffer back into chunks.
//!
//! Layout of one chunk (the original's `DataChunk`), little endian:
//!
//! ```text
//! [version = 1: u8][chunks: u16][index: u16][id_len: u16 = 16][chunk id: 16 bytes][data_len: u16][data]
//! ```
//!
//! We write at most [`CHUNK_PAYLOAD_MAX`] data bytes per chunk, exactly where the original
//! splits, so a chunk is at most 256 bytes (the original's 255-byte budget undercounts its own
//! header by one byte); far below `PIPE_BUF` (4096), so a single `write` of one chunk is atomic on
//! local file systems. When reading we accept any id and data length the fields can express.

use thiserror::Error;

/// The only chunk format version there is.
pub const CHUNK_VERSION: u8 = 1;

/// Length of the random id shared by the chunks of one entry, in bytes.
pub const CHUNK_ID_LEN: usize = 16;

/// Data bytes per chunk we write: the original's `BUFFER_SIZE - CHUNK_HEADER_SIZE` = 255 - 24.
pub const CHUNK_PAYLOAD_MAX: usize = 231;

/// Fixed header bytes before the id: version, chunk count, index, id length.
const FIXED_HEAD: usize = 7;

/// Largest chunk the fields can express, in bytes: the fixed header, a `u16::MAX`-byte id, the
/// data length and `u16::MAX` data bytes (131,079). A reader never buffers more than this for an
/// unfinished chunk, whatever lengths a damaged header claims.
pub const MAX_CHUNK_LEN: usize = FIXED_HEAD + u16::MAX as usize + 2 + u16::MAX as usize;

/// One parsed chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// How many chunks the entry has.
    pub chunks: u16,
    /// This chunk's position in the entry, from 0.
    pub index: u16,
    /// The id shared by the entry's chunks.
    pub id: Vec<u8>,
    /// This chunk's slice of the encoded entry.
    pub data: Vec<u8>,
}

/// Why chunk bytes cannot be produced.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// More than `u16::MAX` chunks would be needed.
    #[error("an entry of {0} bytes needs more than 65535 chunks")]
    TooLarge(usize),
}

/// Appends the chunks of one encoded entry (`entry`, see [`super::data_entry`]) to `out`.
pub fn split_into(
    entry: &[u8],
    chunk_id: &[u8; CHUNK_ID_LEN],
    out: &mut Vec<u8>,
) -> Result<(), SplitError> {
    let count = entry.len().div_ceil(CHUNK_PAYLOAD_MAX).max(1);
    let chunks = u16::try_from(count).map_err(|_| SplitError::TooLarge(entry.len()))?;
    let id_len = u16::try_from(CHUNK_ID_LEN).expect("CHUNK_ID_LEN is 16");
    let pieces = entry
        .chunks(CHUNK_PAYLOAD_MAX)
        .chain(entry.is_empty().then_some(&[][..]));
    for (index, piece) in (0..chunks).zip(pieces) {
        let data_len =
            u16::try_from(piece.len()).expect("a piece is at most CHUNK_PAYLOAD_MAX bytes");
        out.push(CHUNK_VERSION);
        out.extend_from_slice(&chunks.to_le_bytes());
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&id_len.to_le_bytes());
        out.extend_from_slice(chunk_id);
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(piece);
    }
    Ok(())
}

/// How a scan of a buffer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The buffer ended exactly at a chunk boundary.
    Clean,
    /// The last `len` bytes are the start of a chunk: more bytes may finish it, or a crash cut it.
    Partial {
        /// Bytes after the last whole chunk (less than [`MAX_CHUNK_LEN`]).
        len: usize,
    },
    /// The last `len` bytes are zeros: a file extended but not written before a crash, unless
    /// data follows them beyond the buffer.
    Zeros {
        /// Bytes after the last whole chunk.
        len: usize,
    },
    /// Bytes at `offset` (relative to the buffer) are not a chunk and not a torn tail.
    Corrupt {
        /// Where the bad chunk starts.
        offset: usize,
        /// Its version byte.
        version: u8,
    },
}

/// The whole chunks found in a buffer, each with the buffer offset just after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// `(chunk, end offset in the buffer)`, in file order.
    pub chunks: Vec<(Chunk, usize)>,
    /// Offset after the last whole chunk.
    pub consumed: usize,
    /// What follows it.
    pub tail: Tail,
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    buf.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

/// Parses one chunk at the start of `buf`: `Ok(Some((chunk, len)))`, `Ok(None)` when `buf` holds only
/// part of a chunk, `Err(version)` when it does not start with a chunk version byte.
fn parse_one(buf: &[u8]) -> Result<Option<(Chunk, usize)>, u8> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != CHUNK_VERSION {
        return Err(version);
    }
    let (Some(chunks), Some(index), Some(id_len)) =
        (u16_at(buf, 1), u16_at(buf, 3), u16_at(buf, 5))
    else {
        return Ok(None);
    };
    let id_end = FIXED_HEAD + usize::from(id_len);
    let Some(data_len) = u16_at(buf, id_end) else {
        return Ok(None);
    };
    let data_start = id_end + 2;
    let end = data_start + usize::from(data_len);
    let (Some(id), Some(data)) = (buf.get(FIXED_HEAD..id_end), buf.get(data_start..end)) else {
        return Ok(None);
    };
    Ok(Some((
        Chunk {
            chunks,
            index,
            id: id.to_vec(),
            data: data.to_vec(),
        },
        end,
    )))
}

/// Scans `buf` (which starts at a chunk boundary) into whole chunks. A partial chunk at the end is
/// [`Tail::Partial`], zeros up to the end [`Tail::Zeros`], any other non-chunk byte
/// [`Tail::Corrupt`].
pub fn scan(buf: &[u8]) -> Scan {
    let mut chunks = Vec::new();
    let mut at = 0;
    let tail = loop {
        if at == buf.len() {
            break Tail::Clean;
        }
        match parse_one(&buf[at..]) {
            Ok(Some((chunk, len))) => {
                at += len;
                chunks.push((chunk, at));
            }
            Ok(None) => {
                break Tail::Partial {
                    len: buf.len() - at,
                };
            }
            Err(_) if buf[at..].iter().all(|&b| b == 0) => {
                break Tail::Zeros {
                    len: buf.len() - at,
                };
            }
            Err(version) => {
                break Tail::Corrupt {
                    offset: at,
                    version,
                };
            }
        }
    };
    Scan {
        chunks,
        consumed: at,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: [u8; 16] = [7; 16];

    #[test]
    fn splits_at_the_original_boundaries() {
        let mut out = Vec::new();
        split_into(&[5; 500], &ID, &mut out).unwrap();
        let s = scan(&out);
        assert_eq!(s.tail, Tail::Clean);
        let sizes: Vec<_> = s
            .chunks
            .iter()
            .map(|(c, _)| (c.chunks, c.index, c.data.len()))
            .collect();
        assert_eq!(sizes, vec![(3, 0, 231), (3, 1, 231), (3, 2, 38)]);
        assert_eq!(s.chunks[0].1, 25 + 231, "a full chunk is 256 bytes");
        assert_eq!(&out[..7], &[1, 3, 0, 0, 0, 16, 0]);
    }

    #[test]
    fn torn_and_corrupt_tails() {
        let mut out = Vec::new();
        split_into(b"abcd", &ID, &mut out).unwrap();
        let whole = out.len();
        out.extend_from_slice(&[1, 1, 0]);
        assert_eq!(scan(&out).tail, Tail::Partial { len: 3 });
        out.truncate(whole);
        out.extend_from_slice(&[0; 40]);
        assert_eq!(scan(&out).tail, Tail::Zeros { len: 40 });
        out.truncate(whole);
        out.extend_from_slice(&[9, 0, 0]);
        assert_eq!(
            scan(&out).tail,
            Tail::Corrupt {
                offset: whole,
                version: 9
            }
        );
        assert_eq!(scan(&out).consumed, whole);
    }

    proptest! {
        #[test]
        fn split_then_scan_round_trips(entry in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut out = Vec::new();
            split_into(&entry, &ID, &mut out).unwrap();
            let s = scan(&out);
            prop_assert_eq!(s.tail, Tail::Clean);
            prop_assert!(s.chunks.iter().all(|(c, _)| c.data.len() <= CHUNK_PAYLOAD_MAX));
            let joined: Vec<u8> = s.chunks.iter().flat_map(|(c, _)| c.data.clone()).collect();
            prop_assert_eq!(joined, entry);
        }

        #[test]
        fn scan_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let s = scan(&bytes);
            prop_assert!(s.consumed <= bytes.len());
        }
    }
}

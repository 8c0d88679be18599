//! Reading a store file in bounded blocks, the only way the file datastore reads: whole chunks go
//! to a [`Decoder`], a torn tail is measured, damage is reported with its file offset. Sans-IO
//! over [`ReadAt`] (a `File`, or a byte slice in tests).
//!
//! Memory while walking is one block plus at most one unfinished chunk ([`MAX_CHUNK_LEN`]),
//! whatever the file holds or a damaged header claims; what a decoder keeps is bounded by its own
//! limits ([`super::reassemble`], [`super::batch`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::chunk::{self, Chunk, MAX_CHUNK_LEN, Tail};
use super::chunked::{Checked, Decoder};
use super::data_entry::DataEntry;
use super::error::DatastoreError;

/// Bytes read per `pread`: 64 KiB, sixteen pages; large enough that a walk is a few syscalls per
/// megabyte, small enough to not matter next to the entries a read returns.
pub const BLOCK_LEN: usize = 64 * 1024;

/// Positional reads (`pread`).
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError {
    /// Reading failed (the caller adds the path).
    Io(io::Error),
    /// The bytes are damaged, or the decoder refused a chunk.
    Data(DatastoreError),
}

impl From<DatastoreError> for WalkError {
    fn from(e: DatastoreError) -> Self {
        Self::Data(e)
    }
}

/// Where a walk of `[from, to)` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// File offset just after the last whole chunk.
    pub end: u64,
    /// Bytes after it up to `to`: an unfinished chunk or zero fill (a crash's torn tail).
    pub torn: u64,
}

/// Reads `[from, to)` (`from` at a chunk boundary) in blocks of `block_len` bytes and hands each
/// whole chunk, with the file offset just after it, to `on_chunk`. Reads each byte once. Bytes
/// that are neither chunks nor a torn tail are [`DatastoreError::Corrupt`].
pub fn walk<S: ReadAt + ?Sized>(
    src: &S,
    from: u64,
    to: u64,
    block_len: usize,
    mut on_chunk: impl FnMut(Chunk, u64) -> Result<(), DatastoreError>,
) -> Result<Walked, WalkError> {
    let block_len = block_len.max(1);
    let mut block = vec![0; block_len];
    // Bytes from `carry_at` not yet consumed: at most an unfinished chunk plus one block.
    let mut carry = Vec::with_capacity(block_len.min(MAX_CHUNK_LEN) * 2);
    let mut carry_at = from;
    let mut read_to = from;
    loop {
        let n = usize::try_from(to.saturating_sub(read_to))
            .unwrap_or(usize::MAX)
            .min(block_len);
        read_full(src, &mut block[..n], read_to).map_err(WalkError::Io)?;
        read_to += n as u64;
        carry.extend_from_slice(&block[..n]);
        let scan = chunk::scan(&carry);
        for (c, end) in scan.chunks {
            on_chunk(c, carry_at + end as u64)?;
        }
        let end = carry_at + scan.consumed as u64;
        let at_end = read_to >= to;
        match scan.tail {
            Tail::Clean | Tail::Partial { .. } if !at_end => {
                carry.drain(..scan.consumed);
                carry_at = end;
            }
            Tail::Clean | Tail::Partial { .. } => return Ok(walked(end, to)),
            Tail::Zeros { .. } => {
                zeros_to_the_end(src, read_to, to, &mut block, end)?;
                return Ok(walked(end, to));
            }
            Tail::Corrupt { offset, version } => {
                return Err(corrupt(
                    carry_at + offset as u64,
                    format!("chunk version {version}, expected 1"),
                ));
            }
        }
    }
}

fn walked(end: u64, to: u64) -> Walked {
    Walked {
        end,
        torn: to.saturating_sub(end),
    }
}

/// Checks that `[from, to)` holds only zeros; zero fill that began at `zeros_at` and is followed
/// by data is damage, not a torn tail.
fn zeros_to_the_end<S: ReadAt + ?Sized>(
    src: &S,
    mut from: u64,
    to: u64,
    block: &mut [u8],
    zeros_at: u64,
) -> Result<(), WalkError> {
    while from < to {
        let n = usize::try_from(to - from)
            .unwrap_or(usize::MAX)
            .min(block.len());
        read_full(src, &mut block[..n], from).map_err(WalkError::Io)?;
        if let Some(i) = block[..n].iter().position(|&b| b != 0) {
            return Err(corrupt(
                zeros_at,
                format!("zero fill followed by data at {}", from + i as u64),
            ));
        }
        from += n as u64;
    }
    Ok(())
}

fn read_full<S: ReadAt + ?Sized>(src: &S, buf: &mut [u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than the store's length",
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn corrupt(at: u64, reason: String) -> WalkError {
    WalkError::Data(DatastoreError::Corrupt { at, reason })
}

/// Reads the batches completed in `[from, to)`, continuing `decoder` (a cursor's state). On error
/// `decoder` may be partly advanced: pass a copy.
pub fn read_entries<S: ReadAt + ?Sized>(
    src: &S,
    from: u64,
    to: u64,
    block_len: usize,
    decoder: &mut Decoder<DataEntry>,
) -> Result<(Vec<DataEntry>, Walked), WalkError> {
    let mut out = Vec::new();
    let walked = walk(src, from, to, block_len, |c, end| {
        decoder.push(c, end, &mut out).map(drop)
    })?;
    Ok((out, walked))
}

/// Where a store file of `len` bytes should end after a crash: just after the last chunk that
/// completed a batch (a legacy entry is a batch of its own). What follows is a torn chunk, zero
/// fill, or the chunks of entries and batches that never completed: never acknowledged, since an
/// append is acknowledged only after its whole batch is written and synced. Damage anywhere
/// (bytes that are neither chunks nor zero fill, contradicting chunks, entries that do not decode)
/// is an error: a crash of our writer never leaves it, so a damaged store is reported, never cut.
pub fn recovery_point<S: ReadAt + ?Sized>(
    src: &S,
    len: u64,
    block_len: usize,
) -> Result<u64, WalkError> {
    let mut decoder = Decoder::<Checked>::default();
    let mut released = Vec::new();
    let mut valid = 0;
    walk(src, 0, len, block_len, |c, end| {
        if decoder.push(c, end, &mut released)? {
            valid = end;
        }
        released.clear();
        Ok(())
    })?;
    Ok(valid)
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;

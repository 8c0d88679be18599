//! Recovery and reading over whole files (sans-IO, byte slices): a torn batch disappears whole,
//! old files read per entry, damage is an error, reads are bounded blocks.

use std::cell::Cell;

use proptest::prelude::*;

use super::*;
use crate::chunk::{CHUNK_ID_LEN, split_into};
use crate::chunked::encode_batch;

fn entry(n: u8, len: usize) -> DataEntry {
    DataEntry {
        type_: 1,
        id: vec![n; 16],
        data: vec![n; len],
    }
}

/// An entry as the old code (or the original) wrote it: its own random chunk id.
fn legacy(e: &DataEntry, id: [u8; CHUNK_ID_LEN]) -> Vec<u8> {
    let mut out = Vec::new();
    split_into(&e.encode().unwrap(), &id, &mut out).unwrap();
    out
}

fn recover(file: &[u8]) -> u64 {
    recovery_point(file, file.len() as u64, BLOCK_LEN).unwrap()
}

fn read(file: &[u8], block_len: usize) -> Vec<DataEntry> {
    let mut d = Decoder::default();
    read_entries(file, 0, file.len() as u64, block_len, &mut d)
        .unwrap()
        .0
}

fn corrupt_at(file: &[u8]) -> u64 {
    match recovery_point(file, file.len() as u64, BLOCK_LEN) {
        Err(WalkError::Data(DatastoreError::Corrupt { at, .. })) => at,
        other => panic!("expected corrupt, got {other:?}"),
    }
}

/// Batch A (two entries), then batch B (three entries, the middle one five chunks long).
fn two_batches() -> (Vec<u8>, usize, Vec<DataEntry>) {
    let a = vec![entry(1, 10), entry(2, 300)];
    let b = vec![entry(3, 10), entry(4, 1000), entry(5, 40)];
    let mut file = encode_batch(&a).unwrap();
    let a_len = file.len();
    file.extend(encode_batch(&b).unwrap());
    (file, a_len, a)
}

#[test]
fn torn_anywhere_inside_a_multi_entry_batch_drops_the_whole_batch() {
    let (file, a_len, a) = two_batches();
    assert_eq!(recover(&file), file.len() as u64);
    let chunk_ends: Vec<usize> = chunk::scan(&file[a_len..])
        .chunks
        .iter()
        .map(|(_, end)| a_len + end)
        .collect();
    // After B's first entry, inside its second, after its second, one byte short of its end.
    for cut in [
        chunk_ends[0],
        chunk_ends[2],
        chunk_ends[2] + 17,
        chunk_ends[5],
        file.len() - 1,
    ] {
        let torn = &file[..cut];
        assert_eq!(recover(torn), a_len as u64, "cut at {cut}");
        assert_eq!(
            read(torn, BLOCK_LEN),
            a,
            "a reader of the torn file sees A only"
        );
    }
}

#[test]
fn torn_in_the_batch_marker_drops_the_batch() {
    let (file, a_len, a) = two_batches();
    let last_chunk = chunk::scan(&file).chunks.iter().rev().nth(1).unwrap().1;
    // The marker is the chunk id (bytes 7..23 of a chunk): cut in the nonce, the index, the tag.
    for into_id in [2, 8, 12] {
        let torn = &file[..last_chunk + 7 + into_id];
        assert_eq!(recover(torn), a_len as u64);
        assert_eq!(read(torn, 5), a);
    }
}

#[test]
fn garbage_tails() {
    let (file, _, _) = two_batches();
    let good = file.len() as u64;
    let with = |tail: &[u8]| [&file[..], tail].concat();

    // Zero fill (a file extended but never written) and an unfinished chunk whose damaged header
    // claims the largest id and data: cut, reading at most one chunk ahead.
    assert_eq!(recover(&with(&[0; 5000])), good);
    assert_eq!(recover(&with(&[1, 3, 0, 0, 0, 0xff, 0xff, 9, 9, 9])), good);
    // Chunk-shaped leftovers: the start of an entry whose other chunks never came.
    let orphan = legacy(&entry(9, 700), [0x42; 16]);
    assert_eq!(recover(&with(&orphan[..256])), good);

    // Bytes that are not chunks, or zero fill followed by data: damage, reported where it starts.
    assert_eq!(corrupt_at(&with(b"garbage")), good);
    let mut zeros_then_data = vec![0; 3 * BLOCK_LEN];
    zeros_then_data.extend_from_slice(&orphan);
    assert_eq!(corrupt_at(&with(&zeros_then_data)), good);
    // A chunk that completes an entry that is not one.
    let mut bad_entry = Vec::new();
    split_into(&[7, 7, 7, 7, 7], &[0x42; 16], &mut bad_entry).unwrap();
    assert_eq!(corrupt_at(&with(&bad_entry)), good + bad_entry.len() as u64);
}

#[test]
fn old_format_files_recover_per_entry_and_mix_with_batches() {
    let old = [entry(1, 10), entry(2, 500), entry(3, 0)];
    let mut file = Vec::new();
    let mut ends = Vec::new();
    for (i, e) in old.iter().enumerate() {
        file.extend(legacy(e, [i as u8 + 0x10; 16]));
        ends.push(file.len() as u64);
    }
    assert_eq!(recover(&file), file.len() as u64);
    assert_eq!(read(&file, BLOCK_LEN), old);
    // Torn inside the second entry: the first stays (each old entry is its own batch).
    assert_eq!(recover(&file[..ends[0] as usize + 300]), ends[0]);

    // Continued by the new code: old entries, then marked batches.
    let batch = vec![entry(4, 20), entry(5, 20)];
    file.extend(encode_batch(&batch).unwrap());
    let whole = file.len();
    assert_eq!(recover(&file), whole as u64);
    assert_eq!(read(&file, 7), [&old[..], &batch[..]].concat());
    assert_eq!(recover(&file[..whole - 3]), ends[2]);
}

#[test]
fn interleaved_legacy_entries_never_expose_part_of_a_batch() {
    // A torn batch of ours, then an old-style writer's entry that completed after it.
    let batch = encode_batch(&[entry(1, 10), entry(2, 10), entry(3, 10)]).unwrap();
    let second_entry_end = chunk::scan(&batch).chunks[1].1;
    let mut file = batch[..second_entry_end].to_vec();
    file.extend(legacy(&entry(9, 10), [0x42; 16]));
    assert_eq!(
        recover(&file),
        file.len() as u64,
        "the legacy entry is kept"
    );
    assert_eq!(read(&file, BLOCK_LEN), vec![entry(9, 10)]);
    // The next batch closes the torn one for good.
    let next = vec![entry(4, 10)];
    file.extend(encode_batch(&next).unwrap());
    assert_eq!(read(&file, BLOCK_LEN), vec![entry(9, 10), entry(4, 10)]);
}

/// A file that counts what is read from it.
struct Counting<'a> {
    bytes: &'a [u8],
    largest: Cell<usize>,
    total: Cell<u64>,
}

impl ReadAt for Counting<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.largest.set(self.largest.get().max(buf.len()));
        let n = self.bytes.read_at(buf, offset)?;
        self.total.set(self.total.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn recovery_reads_the_file_once_in_bounded_blocks() {
    let mut file = Vec::new();
    for n in 0..200u8 {
        file.extend(encode_batch(&[entry(n, 3000), entry(n, 5)]).unwrap());
    }
    let good = file.len() as u64;
    file.extend_from_slice(&[1, 1, 0, 0, 0, 0xff, 0xff]); // a torn header claiming 64 KiB of id
    let src = Counting {
        bytes: &file,
        largest: Cell::new(0),
        total: Cell::new(0),
    };
    assert_eq!(
        recovery_point(&src, file.len() as u64, BLOCK_LEN).unwrap(),
        good
    );
    assert!(src.largest.get() <= BLOCK_LEN, "{}", src.largest.get());
    assert_eq!(src.total.get(), file.len() as u64, "every byte read once");
}

#[test]
fn a_file_shorter_than_its_length_is_an_io_error() {
    let file = encode_batch(&[entry(1, 10)]).unwrap();
    let err = recovery_point(&file[..], file.len() as u64 + 10, BLOCK_LEN).unwrap_err();
    assert!(
        matches!(&err, WalkError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
}

/// A unit of a test file: a marked batch, or one legacy entry.
fn unit() -> impl Strategy<Value = (bool, Vec<usize>)> {
    (any::<bool>(), proptest::collection::vec(0usize..700, 1..5))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any truncation of a file of N units recovers exactly the units written whole before it,
    /// and a reader of the torn file (before recovery, in one read or two) sees exactly those.
    #[test]
    fn any_truncation_recovers_exactly_the_whole_batches(
        units in proptest::collection::vec(unit(), 1..6),
        cut in any::<prop::sample::Index>(),
        split in any::<prop::sample::Index>(),
        block_len in 1usize..600,
    ) {
        let mut file = Vec::new();
        let mut ends = vec![0usize];
        let mut written: Vec<Vec<DataEntry>> = Vec::new();
        for (u, (is_legacy, sizes)) in units.iter().enumerate() {
            let n = u as u8 * 8;
            let entries: Vec<DataEntry> = if *is_legacy {
                vec![entry(n, sizes[0])]
            } else {
                sizes.iter().enumerate().map(|(i, &len)| entry(n + i as u8, len)).collect()
            };
            if *is_legacy {
                file.extend(legacy(&entries[0], [n ^ 0x5a; CHUNK_ID_LEN]));
            } else {
                file.extend(encode_batch(&entries).unwrap());
            }
            ends.push(file.len());
            written.push(entries);
        }
        let cut = cut.index(file.len() + 1);
        let torn = &file[..cut];
        let whole = ends.iter().rposition(|&e| e <= cut).unwrap();
        let expected: Vec<DataEntry> = written[..whole].concat();

        let valid = recovery_point(torn, cut as u64, block_len).unwrap();
        prop_assert_eq!(valid, ends[whole] as u64);
        prop_assert_eq!(&read(&torn[..valid as usize], block_len), &expected);
        prop_assert_eq!(&read(torn, block_len), &expected);

        let mut d = Decoder::default();
        let mid = split.index(cut + 1) as u64;
        let (mut got, first) = read_entries(torn, 0, mid, block_len, &mut d).unwrap();
        let (rest, _) = read_entries(torn, first.end, cut as u64, block_len, &mut d).unwrap();
        got.extend(rest);
        prop_assert_eq!(got, expected);
    }
}

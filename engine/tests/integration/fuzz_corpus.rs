//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same checks the fuzz targets run
//! (`tandem_engine::fuzzing`), so `make test` catches a regression on any input a fuzzer once found interesting.

use std::path::PathBuf;

/// Every file of one target's corpus directory, sorted by name; panics on an empty or missing directory so that a
/// moved corpus cannot turn this test into one that passes on nothing.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable directory entry").path();
            let bytes = std::fs::read(&path).expect("readable corpus file");
            (path.display().to_string(), bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Runs `check` on every input, naming the input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    for (name, bytes) in corpus(target) {
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            panic!("{target}: corpus input {name} fails its check");
        }
    }
}

#[test]
fn token_preamble_corpus() {
    replay("token_preamble", tandem_engine::fuzzing::token_preamble);
}

#[test]
fn client_hello_corpus() {
    replay("client_hello", tandem_engine::fuzzing::client_hello);
}

#[test]
fn pair_table_corpus() {
    replay("pair_table", tandem_engine::fuzzing::pair_table);
}

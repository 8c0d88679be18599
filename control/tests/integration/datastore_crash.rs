//! Crash safety and fault tolerance: a writer process is SIGKILLed mid-stream (and, for Redis, the
//! server too); every append it saw acknowledged must survive, and the store must still open and
//! append. Redis going away while a store is in use gives errors, then recovers, losing nothing.
//!
//! The writer is this test binary re-executed with [`CHILD_ENV`] set, running `crash_child`.

// Test code: a failed unwrap is a failed test (helpers outside #[test] fns included).
#![allow(clippy::unwrap_used)]

use crate::datastore_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datastore_common::{FileFactory, StoreFactory, entry, number, read_all};
use tandem_control::datastore::testing::RedisServer;
use tandem_control::datastore::{Cursor, Datastore};
use tandem_control::settings::datastore::{
    DatastoreSettings, FileDatastoreSettings, RedisDatastoreSettings,
};
use tandem_control::settings::secret::Secret;

/// `file\t<first number>\t<path>` or `redis\t<first number>\t<address>\t<key>`.
const CHILD_ENV: &str = "TANDEM_DATASTORE_CRASH_CHILD";

/// Appends the child makes at most before giving up on being killed.
const CHILD_MAX_APPENDS: u32 = 20_000;

/// Entry size in the crash tests: 700 bytes, so each entry spans 4 chunks and a kill can tear one.
const ENTRY_LEN: usize = 700;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn child_settings(spec: &str) -> (u32, DatastoreSettings) {
    let fields: Vec<&str> = spec.split('\t').collect();
    let first = fields[1].parse().unwrap();
    let settings = match fields[0] {
        "file" => DatastoreSettings::File(FileDatastoreSettings {
            filename: fields[2].into(),
        }),
        _ => DatastoreSettings::Redis(RedisDatastoreSettings {
            addresses: vec![fields[2].into()],
            key: fields[3].into(),
            master_name: String::new(),
            database: 0,
            password: Secret::default(),
        }),
    };
    (first, settings)
}

#[test]
#[ignore = "a helper process: the crash tests re-execute this binary to run it"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (first, settings) = child_settings(&spec);
    runtime().block_on(async {
        let store = Datastore::open(&settings).await.unwrap();
        let mut out = std::io::stdout().lock();
        for n in first..first + CHILD_MAX_APPENDS {
            store.append(&[entry(n, ENTRY_LEN)]).await.unwrap();
            writeln!(out, "ack {n}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Runs the writer, SIGKILLs it after `kill_after` acknowledgements, returns every number it
/// printed as acknowledged (including those printed before the kill landed).
fn run_writer_and_kill(spec: &str, kill_after: usize) -> Vec<u32> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "datastore_crash::crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acks = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // A line cut by the kill has no newline: not a complete acknowledgement.
        if let Some(n) = line.strip_prefix("ack ").and_then(|l| l.strip_suffix('\n')) {
            acks.push(n.parse().unwrap());
        }
        if !killed && acks.len() >= kill_after {
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        killed,
        "the writer ended after {} acks before being killed ({status}): {stderr}",
        acks.len()
    );
    acks
}

fn assert_acknowledged_present(stored: &[u32], acks: &[u32]) {
    let stored: BTreeSet<u32> = stored.iter().copied().collect();
    let missing: Vec<_> = acks.iter().filter(|n| !stored.contains(n)).collect();
    assert!(missing.is_empty(), "acknowledged entries lost: {missing:?}");
}

#[test]
fn file_writer_killed_mid_stream_loses_nothing_acknowledged() {
    let f = FileFactory::new();
    let spec = |first: u32| format!("file\t{first}\t{}", f.path.display());
    let mut acked = Vec::new();
    for round in 0..4u32 {
        acked.extend(run_writer_and_kill(
            &spec(round * 100_000),
            10 + 7 * round as usize,
        ));
        runtime().block_on(async {
            let store = f.open().await;
            let stored: Vec<u32> = read_all(&store).await.iter().map(number).collect();
            assert_acknowledged_present(&stored, &acked);
            let marker = 1_000_000 + round;
            store.append(&[entry(marker, ENTRY_LEN)]).await.unwrap();
            acked.push(marker);
            assert_eq!(
                read_all(&store).await.last().map(number),
                Some(marker),
                "appends after recovery"
            );
        });
    }
    runtime().block_on(async {
        let entries = read_all(&f.open().await).await;
        for e in &entries {
            assert_eq!(
                e,
                &entry(number(e), ENTRY_LEN),
                "every stored entry is whole"
            );
        }
    });
}

#[test]
fn redis_writer_and_server_killed_lose_nothing_acknowledged() {
    let mut server = RedisServer::start().unwrap();
    let spec = format!("redis\t0\t{}\tcrash-entries", server.addr());
    let acked = run_writer_and_kill(&spec, 25);
    server.restart().unwrap(); // SIGKILL, then reload the AOF (appendfsync always)
    runtime().block_on(async {
        let store = Datastore::open(&DatastoreSettings::Redis(server.settings("crash-entries")))
            .await
            .unwrap();
        let stored: Vec<u32> = read_all(&store).await.iter().map(number).collect();
        assert_acknowledged_present(&stored, &acked);
        store.append(&[entry(999_999, 10)]).await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_while_in_use_errors_then_recovers() {
    let mut server = RedisServer::start().unwrap();
    let store = Datastore::open(&DatastoreSettings::Redis(server.settings("k")))
        .await
        .unwrap();
    let mut acked: Vec<u32> = (0..10).collect();
    for &n in &acked {
        store.append(&[entry(n, 50)]).await.unwrap();
    }
    let mut cursor = Cursor::default();
    assert_eq!(store.read_new(&mut cursor).await.unwrap().len(), 10);

    server.kill().unwrap();
    let down = Instant::now();
    let err = store.append(&[entry(100, 50)]).await.unwrap_err();
    assert!(["redis", "timeout"].contains(&err.kind()), "{err}");
    let err = store.read_new(&mut cursor).await.unwrap_err();
    assert!(["redis", "timeout"].contains(&err.kind()), "{err}");
    // Each call is bounded by its 1 s command timeout; the bound catches a hang, with room for
    // a loaded machine.
    assert!(
        down.elapsed() < Duration::from_secs(20),
        "calls fail within their timeouts while Redis is down"
    );
    assert_eq!(
        cursor.position(),
        10,
        "a failed read leaves the cursor alone"
    );

    server.restart().unwrap();
    // The connection manager reconnects in the background; retry (bounded) until it has.
    let mut attempts = 0;
    while let Err(e) = store.append(&[entry(200, 50)]).await {
        attempts += 1;
        assert!(attempts < 100, "no recovery after Redis came back: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked.push(200);
    for n in 201..205 {
        store.append(&[entry(n, 50)]).await.unwrap();
        acked.push(n);
    }
    let new: Vec<u32> = store
        .read_new(&mut cursor)
        .await
        .unwrap()
        .iter()
        .map(number)
        .collect();
    assert!(new.ends_with(&[200, 201, 202, 203, 204]), "{new:?}");
    let stored: Vec<u32> = read_all(&store).await.iter().map(number).collect();
    assert_acknowledged_present(&stored, &acked);
}

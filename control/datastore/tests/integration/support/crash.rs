//! A real writer process for the crash tests: this test binary re-executed with [`CHILD_ENV`]
//! set, running `crash::crash_child`, which calls [`child_main`]. It appends numbered
//! batches through the public `Datastore` API and prints `ack <first number>` after each append
//! returns, until it is killed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use tandem_datastore::{DataEntry, Datastore};
use tandem_settings::datastore::{
    DatastoreSettings, FileDatastoreSettings, RedisDatastoreSettings,
};

use super::{entry, number};

/// Carries the [`Writer`] spec to the child.
pub const CHILD_ENV: &str = "TANDEM_DATASTORE_CRASH_CHILD";

/// Batches the child appends at most before giving up on being killed.
const CHILD_MAX_BATCHES: u32 = 20_000;

/// Batches a killer watches the file for a moment inside a batch before killing anyway: 8
/// (about 7 MB in the file tests).
const WATCH_BATCHES: u64 = 8;

/// Where the writer appends.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file store.
    File(PathBuf),
    /// A Redis list: server address and key.
    Redis(String, String),
}

/// What one writer process does.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The store.
    pub target: Target,
    /// Number of the first entry; batch `b` holds `first + b * per_batch ..` (`per_batch` entries).
    pub first: u32,
    /// Entries per batch.
    pub per_batch: u32,
    /// Data bytes per entry.
    pub entry_len: usize,
    /// File stores only: the file-size limit (`RLIMIT_FSIZE`) set after opening, so that the
    /// kernel kills the writer (SIGXFSZ) when a write reaches it, leaving the written part.
    pub file_size_limit: Option<u64>,
}

impl Writer {
    fn encode(&self) -> String {
        let (kind, a, b) = match &self.target {
            Target::File(p) => ("file", p.display().to_string(), String::new()),
            Target::Redis(addr, key) => ("redis", addr.clone(), key.clone()),
        };
        let limit = self
            .file_size_limit
            .map_or(String::new(), |l| l.to_string());
        let (first, per_batch, len) = (self.first, self.per_batch, self.entry_len);
        format!("{kind}\t{a}\t{b}\t{first}\t{per_batch}\t{len}\t{limit}")
    }

    fn decode(spec: &str) -> Self {
        let f: Vec<&str> = spec.split('\t').collect();
        let target = match f[0] {
            "file" => Target::File(f[1].into()),
            _ => Target::Redis(f[1].into(), f[2].into()),
        };
        Self {
            target,
            first: f[3].parse().unwrap(),
            per_batch: f[4].parse().unwrap(),
            entry_len: f[5].parse().unwrap(),
            file_size_limit: (!f[6].is_empty()).then(|| f[6].parse().unwrap()),
        }
    }

    fn settings(&self) -> DatastoreSettings {
        match &self.target {
            Target::File(p) => DatastoreSettings::File(FileDatastoreSettings {
                filename: p.clone(),
            }),
            Target::Redis(addr, key) => {
                DatastoreSettings::Redis(RedisDatastoreSettings::plain(addr.clone(), key.clone()))
            }
        }
    }

    /// The entries of batch `b`.
    pub fn batch(&self, b: u32) -> Vec<DataEntry> {
        let start = self.first + b * self.per_batch;
        (start..start + self.per_batch)
            .map(|n| entry(n, self.entry_len))
            .collect()
    }

    /// Bytes one batch takes in a file store: per entry, its encoding (4 + 16-byte id + data) in
    /// chunks of at most 231 data bytes behind a 25-byte header.
    pub fn file_batch_len(&self) -> u64 {
        let encoded = 4 + 16 + self.entry_len;
        let chunks = encoded.div_ceil(231);
        u64::from(self.per_batch) * (encoded + 25 * chunks) as u64
    }

    /// Runs the writer; with `kill_after`, SIGKILLs it once it has printed that many acks (and,
    /// for a file store, is seen in the middle of writing a batch).
    /// Returns the first numbers of the batches it acknowledged (those printed before the kill
    /// landed included) and how it ended.
    pub fn run(&self, kill_after: Option<usize>) -> (Vec<u32>, ExitStatus) {
        let start_len = self.file_len();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, self.encode())
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
            // The harness prints `test <name> ... ` without a newline before the first ack. A line
            // cut by the kill has no newline: not a complete acknowledgement.
            if let Some((_, n)) = line.strip_suffix('\n').and_then(|l| l.rsplit_once("ack ")) {
                acks.push(n.parse().unwrap());
            }
            if !killed && kill_after.is_some_and(|k| acks.len() >= k) {
                self.await_mid_batch(&mut child, start_len);
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
        let expected = if killed {
            Some(libc::SIGKILL)
        } else {
            self.file_size_limit.map(|_| libc::SIGXFSZ)
        };
        assert_eq!(
            status.signal(),
            expected,
            "the writer ended after {} acks ({status}): {stderr}",
            acks.len()
        );
        (acks, status)
    }
}

impl Writer {
    fn file_len(&self) -> u64 {
        match &self.target {
            Target::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            Target::Redis(..) => 0,
        }
    }

    /// For a file store, waits until the file's length is inside a batch (its write has begun and
    /// not finished), so that the kill lands mid-batch: likely, not certain, and the tests'
    /// assertions hold either way. Gives up (the kill lands wherever) after the writer has
    /// finished [`WATCH_BATCHES`] more batches, or if it has exited.
    fn await_mid_batch(&self, child: &mut Child, start_len: u64) {
        if !matches!(self.target, Target::File(_)) {
            return;
        }
        let batch = self.file_batch_len();
        let give_up = self.file_len() + WATCH_BATCHES * batch;
        loop {
            let len = self.file_len();
            if !(len - start_len).is_multiple_of(batch) || len >= give_up {
                return;
            }
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// The child's body: open, set the file-size limit if asked, append batches and ack each.
pub fn child_main() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let w = Writer::decode(&spec);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Datastore::open(&w.settings()).await.unwrap();
        if let Some(limit) = w.file_size_limit {
            set_limit(false, 0); // dying of SIGXFSZ leaves no core file
            set_limit(true, limit);
        }
        let mut out = std::io::stdout().lock();
        for b in 0..CHILD_MAX_BATCHES {
            store.append(&w.batch(b)).await.unwrap();
            writeln!(out, "ack {}", w.first + b * w.per_batch).unwrap();
            out.flush().unwrap();
        }
    });
}

/// Lowers this process's soft `RLIMIT_FSIZE` (`file_size`) or `RLIMIT_CORE` to `soft` bytes.
fn set_limit(file_size: bool, soft: u64) {
    let resource = if file_size {
        libc::RLIMIT_FSIZE
    } else {
        libc::RLIMIT_CORE
    };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid, owned struct.
    unsafe {
        assert_eq!(libc::getrlimit(resource, &mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(resource, &limit), 0);
    }
}

/// Checks that `stored` (entries written by writers with `per_batch` entries per batch, numbered
/// from multiples of `per_batch`) consists of whole batches, each in order and intact, and
/// returns the first numbers of those batches.
pub fn whole_batches(stored: &[DataEntry], per_batch: u32, entry_len: usize) -> Vec<u32> {
    let mut batches: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut order = Vec::new();
    for e in stored {
        let n = number(e);
        assert_eq!(e, &entry(n, entry_len), "entry {n} is intact");
        let first = n - n % per_batch;
        let members = batches.entry(first).or_default();
        if members.is_empty() {
            order.push(first);
        }
        members.push(n);
    }
    for (first, members) in &batches {
        let expected: Vec<u32> = (*first..first + per_batch).collect();
        assert_eq!(members, &expected, "batch {first} is whole and in order");
    }
    order
}

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use super::*;
use tandem_engine::CoreId;

fn id(seq: u64) -> PairId {
    PairId {
        core: CoreId(1),
        seq,
    }
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn sources() -> [SocketAddr; 2] {
    [
        "198.51.100.7:50123".parse().unwrap(),
        "203.0.113.9:41000".parse().unwrap(),
    ]
}

fn closed(seq: u64, bytes: [u64; 2]) -> PairEvent {
    PairEvent::Closed {
        id: id(seq),
        reason: CloseReason::Normal,
        bytes_a_to_b: bytes[0],
        bytes_b_to_a: bytes[1],
    }
}

/// Feeds a pair's life through `apply` and returns its line.
fn life(blur: Option<NonZeroU64>, bytes: [u64; 2]) -> Value {
    let mut pending = HashMap::new();
    let operators = Entry::Operators {
        id: id(7),
        requester: "hd-1".into(),
        target: "hd-2".into(),
    };
    assert!(apply(&mut pending, operators, blur).is_none());
    let paired = PairEvent::Paired {
        id: id(7),
        sources: sources(),
        waited: Duration::from_millis(1_600),
    };
    let event = Entry::Event {
        event: paired,
        at: at(10_000),
    };
    assert!(apply(&mut pending, event, blur).is_none());
    let end = Entry::Event {
        event: closed(7, bytes),
        at: at(15_031),
    };
    let line = apply(&mut pending, end, blur).unwrap();
    assert!(pending.is_empty(), "a closed pair leaves nothing behind");
    line
}

#[test]
fn a_line_carries_the_pair_its_sources_operators_times_and_bytes() {
    let line = life(None, [1_048_576, 2_048]);
    assert_eq!(
        line,
        json!({
            "pair": id(7).to_string(),
            "core": 1,
            "sources": ["198.51.100.7:50123", "203.0.113.9:41000"],
            "requester": "hd-1",
            "target": "hd-2",
            "waited_ms": 1_600,
            "duration_ms": 5_031,
            "bytes_a_to_b": 1_048_576,
            "bytes_b_to_a": 2_048,
            "reason": "normal",
            "at": "2023-11-14T22:13:35.031Z",
        })
    );
}

#[test]
fn blur_coarsens_times_sizes_and_sources() {
    let line = life(NonZeroU64::new(3600), [1_000_001, 0]);
    assert_eq!(line["at"], "2023-11-14T22:00:00.000Z");
    assert_eq!(line["waited_ms"], 2_000);
    assert_eq!(line["duration_ms"], 5_000);
    assert_eq!(line["bytes_a_to_b"], 1_048_576);
    assert_eq!(line["bytes_b_to_a"], 0);
    assert_eq!(line["sources"], json!(["198.51.100.7", "203.0.113.9"]));
}

#[test]
fn a_pair_that_never_paired_still_gets_a_line() {
    let mut pending = HashMap::new();
    let end = Entry::Event {
        event: PairEvent::Closed {
            id: id(9),
            reason: CloseReason::Expired,
            bytes_a_to_b: 0,
            bytes_b_to_a: 0,
        },
        at: at(0),
    };
    let line = apply(&mut pending, end, None).unwrap();
    assert_eq!(line["reason"], "expired");
    assert_eq!(line["sources"], Value::Null);
    assert_eq!(line["duration_ms"], Value::Null);
}

/// A `Write` the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_writer_thread_writes_one_json_line_per_ended_pair_and_counts_them() {
    let out = Shared::default();
    let log = AccessLog::start_with(Box::new(out.clone()), None).unwrap();
    log.annotate(id(1), "hd-1", "hd-2");
    let paired = PairEvent::Paired {
        id: id(1),
        sources: sources(),
        waited: Duration::ZERO,
    };
    log.observe(&paired, at(0));
    log.observe(&closed(1, [5, 6]), at(10));
    log.observe(&closed(2, [0, 0]), at(20));
    log.close();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["bytes_a_to_b"], 5);
    assert_eq!(lines[0]["requester"], "hd-1");
    assert_eq!((log.written.get(), log.dropped.get()), (2, 0));
    // Closed: later events are not written (and not counted as written).
    log.observe(&closed(3, [0, 0]), at(30));
    assert_eq!(log.written.get(), 2);
}

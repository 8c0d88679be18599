//! The structured hash of SPEC §3.3 (`helpers/hash.go`): SHA-256 over a canonical byte stream in which Go's zero
//! values ("null") write nothing. The stream encoder is public so tests can compare exact bytes.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::record::{ChangeRecord, SignedChangeRecord};

/// Where the stream goes: a buffer (tests) or the SHA-256 state.
pub trait Sink {
    /// Appends bytes to the stream.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Width of Go's `binary.MaxVarintLen64`: every number is written in a 10-byte field.
const NUMBER_FIELD: usize = 10;

/// `S(x)` = `"string"` ‖ UTF-8 of x. Written even for an empty x (used for tags and keys).
pub fn put_str(out: &mut impl Sink, s: &str) {
    out.put(b"string");
    out.put(s.as_bytes());
}

/// A Go signed integer: zig-zag varint zero-padded to 10 bytes, no tag. JSON never produces it; kept for completeness.
pub fn put_int(out: &mut impl Sink, v: i64) -> bool {
    if v == 0 {
        return false;
    }
    let zigzag = ((v << 1) ^ (v >> 63)) as u64;
    out.put(&uvarint_field(zigzag));
    true
}

/// A Go unsigned integer: `S("int")` ‖ uvarint zero-padded to 10 bytes. JSON never produces it.
pub fn put_uint(out: &mut impl Sink, v: u64) -> bool {
    if v == 0 {
        return false;
    }
    put_str(out, "int");
    out.put(&uvarint_field(v));
    true
}

/// A Go `[]byte`: `S("bytes")` ‖ raw bytes; empty is null. JSON never produces it.
pub fn put_bytes(out: &mut impl Sink, v: &[u8]) -> bool {
    if v.is_empty() {
        return false;
    }
    put_str(out, "bytes");
    out.put(v);
    true
}

fn uvarint_field(mut v: u64) -> [u8; NUMBER_FIELD] {
    let mut field = [0u8; NUMBER_FIELD];
    for slot in field.iter_mut() {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            *slot = low;
            break;
        }
        *slot = low | 0x80;
    }
    field
}

/// A float64 (every JSON number): `S("float")` ‖ 8-byte LE IEEE-754 ‖ 2 zero bytes; `0.0` (and `-0.0`, as Go ≥ 1.22
/// `reflect.Value.IsZero` treats it) is null.
pub fn put_float(out: &mut impl Sink, v: f64) -> bool {
    if v == 0.0 {
        return false;
    }
    put_str(out, "float");
    let mut field = [0u8; NUMBER_FIELD];
    field[..8].copy_from_slice(&v.to_bits().to_le_bytes());
    out.put(&field);
    true
}

/// Writes `E(v)`; returns false (having written nothing) when `v` is null in Go's sense: `null`, `false`, `""`, `0`,
/// `[]`. An empty object is not null (a non-nil empty map writes `S("map")`).
pub fn encode(v: &Value, out: &mut impl Sink) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Bool(true) => {
            put_str(out, "bool");
            put_int(out, 1)
        }
        Value::Number(n) => put_float(out, n.as_f64().unwrap_or(0.0)),
        Value::String(s) if s.is_empty() => false,
        Value::String(s) => {
            put_str(out, s);
            true
        }
        Value::Array(items) if items.is_empty() => false,
        Value::Array(items) => {
            put_str(out, "list");
            for (i, item) in items.iter().enumerate() {
                put_str(out, &i.to_string());
                encode(item, out);
            }
            true
        }
        Value::Object(map) => {
            encode_map(map, out);
            true
        }
    }
}

/// `S("map")`, then per key in bytewise order: `E(value)` then `S(key)`, skipping null values with their key.
fn encode_map(map: &Map<String, Value>, out: &mut impl Sink) {
    put_str(out, "map");
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for key in keys {
        if map.get(key).is_some_and(|value| encode(value, out)) {
            put_str(out, key);
        }
    }
}

/// A struct field: `E(value)` then `S(name)` unless the value was null.
fn field(out: &mut impl Sink, name: &str, wrote: bool) {
    if wrote {
        put_str(out, name);
    }
}

fn put_nonempty(out: &mut impl Sink, s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    put_str(out, s);
    true
}

/// The `ChangeRecord` struct as a map (keys `created_at`, `data`, `name`, `section`).
pub fn encode_change_record(record: &ChangeRecord, out: &mut impl Sink) {
    put_str(out, "map");
    let created_at = if record.created_at.is_go_zero() {
        String::new()
    } else {
        record.created_at.to_rfc3339_nano()
    };
    let wrote = put_nonempty(out, &created_at);
    field(out, "created_at", wrote);
    let wrote = encode(&record.data, out);
    field(out, "data", wrote);
    let wrote = put_nonempty(out, &record.name);
    field(out, "name", wrote);
    put_str(out, record.section.as_str());
    put_str(out, "section");
}

/// The `SignedChangeRecord` struct with `signature = nil`: keys `hash`, `parent_hash`, `record` (signature skipped).
pub fn encode_signed_record(record: &SignedChangeRecord, out: &mut impl Sink) {
    put_str(out, "map");
    let wrote = put_nonempty(out, &record.hash);
    field(out, "hash", wrote);
    let wrote = put_nonempty(out, &record.parent_hash);
    field(out, "parent_hash", wrote);
    encode_change_record(&record.record, out);
    put_str(out, "record");
}

/// `StructuredHash(v)` of a JSON value.
pub fn structured_hash(v: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    encode(v, &mut hasher);
    hasher.finalize().into()
}

/// `CalculateRecordHash`: lowercase hex of the structured hash of the (schema-normalised) change record.
pub fn record_hash(record: &ChangeRecord) -> String {
    let mut hasher = Sha256::new();
    encode_change_record(record, &mut hasher);
    hex::encode(hasher.finalize())
}

/// The digest that is signed: structured hash of `{hash, parent_hash, record}` (signature excluded).
pub fn signing_digest(record: &SignedChangeRecord) -> [u8; 32] {
    let mut hasher = Sha256::new();
    encode_signed_record(record, &mut hasher);
    hasher.finalize().into()
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;

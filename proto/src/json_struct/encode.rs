//! Encoding: one pass measures every nested message bottom-up into a list in pre-order, a second
//! writes the bytes taking the lengths in the same order (prost's `encoded_len` recursed at every
//! level, measuring a tree of depth d d times over).

use prost::bytes::BufMut;
use serde_json::{Map, Value};

/// Length of `v` as a varint.
fn varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// Bytes of a length-delimited field (one-byte tag) whose body is `body` bytes.
pub(crate) fn delimited_len(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

/// A JSON number as the double the wire carries (serde_json numbers always have one).
fn double(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// Message lengths in pre-order, measured once; the [`Writer`] takes them in the same order.
#[derive(Default)]
pub(crate) struct Lengths(pub(crate) Vec<usize>);

impl Lengths {
    fn slot(&mut self) -> usize {
        self.0.push(0);
        self.0.len() - 1
    }

    /// Body length of `map` as a `Struct`; pushes each map entry's and value's length.
    pub(crate) fn of_struct(&mut self, map: &Map<String, Value>) -> usize {
        let mut total = 0;
        for (key, value) in map {
            let entry = self.slot();
            // prost skips a default (empty) key; a value from JSON always has a kind.
            let key_len = if key.is_empty() {
                0
            } else {
                delimited_len(key.len())
            };
            let len = key_len + delimited_len(self.of_value(value));
            self.0[entry] = len;
            total += delimited_len(len);
        }
        total
    }

    /// Body length of a `Value` (pushed first), then of what it holds.
    fn of_value(&mut self, v: &Value) -> usize {
        let own = self.slot();
        let len = match v {
            // `null_value: NULL_VALUE` (0): a oneof member is written even when default.
            Value::Null | Value::Bool(_) => 2,
            Value::Number(_) => 1 + 8,
            Value::String(s) => delimited_len(s.len()),
            Value::Object(map) => {
                let inner = self.slot();
                let body = self.of_struct(map);
                self.0[inner] = body;
                delimited_len(body)
            }
            Value::Array(items) => {
                let inner = self.slot();
                let body = items.iter().map(|v| delimited_len(self.of_value(v))).sum();
                self.0[inner] = body;
                delimited_len(body)
            }
        };
        self.0[own] = len;
        len
    }
}

/// Writes messages with lengths from a [`Lengths`] pass over the same tree.
pub(crate) struct Writer<'a, B> {
    pub(crate) buf: &'a mut B,
    pub(crate) lengths: std::slice::Iter<'a, usize>,
}

impl<B: BufMut> Writer<'_, B> {
    fn next(&mut self) -> usize {
        // The measuring pass pushed one length for each one taken here, in the same order.
        self.lengths.next().copied().unwrap_or(0)
    }

    pub(crate) fn key(&mut self, field: u32, wire: u32) {
        prost::encoding::encode_varint(u64::from(field << 3 | wire), self.buf);
    }

    pub(crate) fn delimited(&mut self, field: u32, len: usize) {
        self.key(field, 2);
        prost::encoding::encode_varint(len as u64, self.buf);
    }

    pub(crate) fn string(&mut self, field: u32, s: &str) {
        self.delimited(field, s.len());
        self.buf.put_slice(s.as_bytes());
    }

    fn write_struct(&mut self, map: &Map<String, Value>) {
        for (key, value) in map {
            let entry = self.next();
            self.delimited(1, entry);
            if !key.is_empty() {
                self.string(1, key);
            }
            self.write_value(2, value);
        }
    }

    /// `value` as field `field` of its parent (header and body).
    fn write_value(&mut self, field: u32, value: &Value) {
        let len = self.next();
        self.delimited(field, len);
        match value {
            Value::Null => {
                self.key(1, 0);
                self.buf.put_u8(0);
            }
            Value::Number(n) => {
                self.key(2, 1);
                self.buf.put_f64_le(double(n));
            }
            Value::String(s) => self.string(3, s),
            Value::Bool(b) => {
                self.key(4, 0);
                self.buf.put_u8(u8::from(*b));
            }
            Value::Object(map) => {
                let body = self.next();
                self.delimited(5, body);
                self.write_struct(map);
            }
            Value::Array(items) => {
                let body = self.next();
                self.delimited(6, body);
                for v in items {
                    self.write_value(1, v);
                }
            }
        }
    }

    /// A `Struct` field `field` whose body [`Lengths::of_struct`] measured as `body` bytes.
    pub(crate) fn struct_field(&mut self, field: u32, map: &Map<String, Value>, body: usize) {
        self.delimited(field, body);
        self.write_struct(map);
    }
}

//! The `Hyper` service's codec: decoding is prost's; encoding writes the same bytes prost writes
//! but computes every nested message's length once.
//!
//! prost encodes a nested message as `tag, encoded_len(), body`, and `encoded_len()` recurses, so a
//! tree of `Struct`s of depth d is measured d times over. A `_ping` answer carries two directory
//! entries as `Struct`s (records inside entries inside params): measuring them was the largest
//! single cost of a brokered call (10 % of hd-1's and hd-2's CPU, `tandem-bench broker`). Here
//! one pass measures every message bottom-up into a list in pre-order, and a second pass writes
//! the bytes, taking the lengths in the same order. The output is byte-identical to prost's
//! (map entries in key order, default keys and values skipped as prost skips them); the tests
//! compare both.

use std::marker::PhantomData;

use prost::bytes::BufMut;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

use crate::hyper::{Error, Request, Response};

/// A message this codec encodes itself.
pub trait FastEncode {
    /// Writes exactly the bytes `prost::Message::encode` writes.
    fn encode_fast(&self, buf: &mut impl BufMut);
}

/// Codec of the generated `Hyper` client and server (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct HyperCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for HyperCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The encoding half of [`HyperCodec`].
#[derive(Debug, Clone, Default)]
pub struct FastEncoder<T>(PhantomData<T>);

impl<T: FastEncode> Encoder for FastEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode_fast(buf);
        Ok(())
    }
}

impl<T, U> Codec for HyperCodec<T, U>
where
    T: FastEncode + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = FastEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        FastEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

/// Length of `v` as a varint.
fn varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// Bytes of a length-delimited field (one-byte tag) whose body is `body` bytes.
fn delimited(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

/// Message lengths in pre-order, measured once; the writer takes them in the same order.
#[derive(Default)]
struct Lengths(Vec<usize>);

impl Lengths {
    fn slot(&mut self) -> usize {
        self.0.push(0);
        self.0.len() - 1
    }

    /// Body length of a `Struct`; pushes each map entry's and value's length.
    fn of_struct(&mut self, s: &Struct) -> usize {
        let mut total = 0;
        for (key, value) in &s.fields {
            let entry = self.slot();
            let key_len = if key.is_empty() {
                0
            } else {
                delimited(key.len())
            };
            let value_len = if value.kind.is_none() {
                0
            } else {
                delimited(self.of_value(value))
            };
            self.0[entry] = key_len + value_len;
            total += delimited(key_len + value_len);
        }
        total
    }

    /// Body length of a `Value` (pushed first), then of what it holds.
    fn of_value(&mut self, v: &Value) -> usize {
        let own = self.slot();
        let len = match &v.kind {
            None => 0,
            Some(Kind::NullValue(n)) => 1 + varint_len(i64::from(*n) as u64),
            Some(Kind::NumberValue(_)) => 1 + 8,
            Some(Kind::StringValue(s)) => delimited(s.len()),
            Some(Kind::BoolValue(_)) => 2,
            Some(Kind::StructValue(s)) => {
                let inner = self.slot();
                let body = self.of_struct(s);
                self.0[inner] = body;
                delimited(body)
            }
            Some(Kind::ListValue(l)) => {
                let inner = self.slot();
                let body = self.of_list(l);
                self.0[inner] = body;
                delimited(body)
            }
        };
        self.0[own] = len;
        len
    }

    fn of_list(&mut self, l: &ListValue) -> usize {
        l.values.iter().map(|v| delimited(self.of_value(v))).sum()
    }
}

/// Writes messages with lengths from a [`Lengths`] pass over the same tree.
struct Writer<'a, B> {
    buf: &'a mut B,
    lengths: std::slice::Iter<'a, usize>,
}

impl<B: BufMut> Writer<'_, B> {
    fn next(&mut self) -> usize {
        // The measuring pass pushed one length for each one taken here, in the same order.
        self.lengths.next().copied().unwrap_or(0)
    }

    fn key(&mut self, field: u32, wire: u32) {
        prost::encoding::encode_varint(u64::from(field << 3 | wire), self.buf);
    }

    fn delimited(&mut self, field: u32, len: usize) {
        self.key(field, 2);
        prost::encoding::encode_varint(len as u64, self.buf);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.delimited(field, s.len());
        self.buf.put_slice(s.as_bytes());
    }

    fn write_struct(&mut self, s: &Struct) {
        for (key, value) in &s.fields {
            let entry = self.next();
            self.delimited(1, entry);
            if !key.is_empty() {
                self.string(1, key);
            }
            if value.kind.is_some() {
                self.write_value(2, value);
            }
        }
    }

    /// `value` as field `field` of its parent (header and body).
    fn write_value(&mut self, field: u32, value: &Value) {
        let len = self.next();
        self.delimited(field, len);
        match &value.kind {
            None => {}
            Some(Kind::NullValue(n)) => {
                self.key(1, 0);
                prost::encoding::encode_varint(i64::from(*n) as u64, self.buf);
            }
            Some(Kind::NumberValue(x)) => {
                self.key(2, 1);
                self.buf.put_f64_le(*x);
            }
            Some(Kind::StringValue(s)) => self.string(3, s),
            Some(Kind::BoolValue(b)) => {
                self.key(4, 0);
                self.buf.put_u8(u8::from(*b));
            }
            Some(Kind::StructValue(s)) => {
                let body = self.next();
                self.delimited(5, body);
                self.write_struct(s);
            }
            Some(Kind::ListValue(l)) => {
                let body = self.next();
                self.delimited(6, body);
                for v in &l.values {
                    self.write_value(1, v);
                }
            }
        }
    }

    /// An optional `Struct` field with its measured body length.
    fn struct_field(&mut self, field: u32, s: &Struct, body: usize) {
        self.delimited(field, body);
        self.write_struct(s);
    }
}

fn measure_struct(s: Option<&Struct>, lengths: &mut Lengths) -> usize {
    s.map_or(0, |s| lengths.of_struct(s))
}

impl FastEncode for Request {
    fn encode_fast(&self, buf: &mut impl BufMut) {
        let mut lengths = Lengths::default();
        let params = measure_struct(self.params.as_ref(), &mut lengths);
        let mut w = Writer {
            buf,
            lengths: lengths.0.iter(),
        };
        if !self.method.is_empty() {
            w.string(1, &self.method);
        }
        if let Some(p) = &self.params {
            w.struct_field(2, p, params);
        }
        if !self.id.is_empty() {
            w.string(3, &self.id);
        }
        if !self.client_name.is_empty() {
            w.string(4, &self.client_name);
        }
    }
}

fn error_len(e: &Error, data: usize) -> usize {
    let code = if e.code == 0 {
        0
    } else {
        1 + varint_len(i64::from(e.code) as u64)
    };
    let message = if e.message.is_empty() {
        0
    } else {
        delimited(e.message.len())
    };
    let data = if e.data.is_some() { delimited(data) } else { 0 };
    code + message + data
}

impl FastEncode for Response {
    fn encode_fast(&self, buf: &mut impl BufMut) {
        let mut lengths = Lengths::default();
        let result = measure_struct(self.result.as_ref(), &mut lengths);
        let data = measure_struct(
            self.error.as_ref().and_then(|e| e.data.as_ref()),
            &mut lengths,
        );
        let mut w = Writer {
            buf,
            lengths: lengths.0.iter(),
        };
        if !self.id.is_empty() {
            w.string(1, &self.id);
        }
        if let Some(r) = &self.result {
            w.struct_field(2, r, result);
        }
        if let Some(e) = &self.error {
            w.delimited(3, error_len(e, data));
            if e.code != 0 {
                w.key(1, 0);
                prost::encoding::encode_varint(i64::from(e.code) as u64, w.buf);
            }
            if !e.message.is_empty() {
                w.string(2, &e.message);
            }
            if let Some(d) = &e.data {
                w.struct_field(3, d, data);
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The `Hyper` messages (`hyper.proto`'s `Request`, `Response`, `Error`) with their `Struct` fields
//! held as `serde_json` objects, encoded and decoded by [`crate::json_struct`] (`extern_path` in
//! build.rs points the generated service at these types).

use prost::bytes::BufMut;
use serde_json::{Map, Value};

use crate::json_struct::{DecodeError, Lengths, Reader, Writer, delimited_len};

/// The params key every receiving broker sets itself from the caller's certificate and directory
/// entry (SPEC §2.4 step 3): a sender's copy is skipped unread when a [`Request`] is decoded.
pub const CLIENT_KEY: &str = "_client";

/// A JSON-RPC style request between operators.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// The full method, `<operator>.<method>`.
    pub method: String,
    /// The params object (the caller injects `_client`; a received one is dropped unread).
    pub params: Option<Map<String, Value>>,
    /// The addressable id, `<operator>.<method>(<original id>)`.
    pub id: String,
    /// The operator name the sender claims (checked against its certificate).
    pub client_name: String,
}

/// An error inside a response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Error {
    /// The code (`int32`).
    pub code: i32,
    /// The message.
    pub message: String,
    /// Optional details.
    pub data: Option<Map<String, Value>>,
}

/// A JSON-RPC style response between operators.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// Echoes `Request.id`.
    pub id: String,
    /// The result object.
    pub result: Option<Map<String, Value>>,
    /// The error, if any.
    pub error: Option<Error>,
}

/// A message the `Hyper` codec encodes.
pub trait FastEncode {
    /// Writes the message's bytes (exactly prost's for the equivalent `prost_types` message).
    fn encode_fast(&self, buf: &mut impl BufMut);
}

/// A message the `Hyper` codec decodes.
pub trait FastDecode: Sized {
    /// Reads one whole message.
    fn decode_fast(bytes: &[u8]) -> Result<Self, DecodeError>;
}

fn measure(map: Option<&Map<String, Value>>, lengths: &mut Lengths) -> usize {
    map.map_or(0, |m| lengths.of_struct(m))
}

/// A `Struct` field merged into `slot` (a repeated message field merges, as protobuf says).
fn merge_into(
    slot: &mut Option<Map<String, Value>>,
    body: &[u8],
    skip: Option<&str>,
) -> Result<(), DecodeError> {
    let map = slot.get_or_insert_with(Map::new);
    crate::json_struct::decode::merge_struct(body, map, 1, skip)
}

impl FastEncode for Request {
    fn encode_fast(&self, buf: &mut impl BufMut) {
        let mut lengths = Lengths::default();
        let params = measure(self.params.as_ref(), &mut lengths);
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

impl FastDecode for Request {
    fn decode_fast(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut m = Request::default();
        while !r.is_empty() {
            match r.key()? {
                (1, wire) => m.method = owned(r.message(1, wire)?)?,
                (2, wire) => merge_into(&mut m.params, r.message(2, wire)?, Some(CLIENT_KEY))?,
                (3, wire) => m.id = owned(r.message(3, wire)?)?,
                (4, wire) => m.client_name = owned(r.message(4, wire)?)?,
                (field, wire) => r.skip(field, wire)?,
            }
        }
        Ok(m)
    }
}

fn owned(bytes: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| DecodeError::Utf8)
}

fn error_len(e: &Error, data: usize) -> usize {
    let code = if e.code == 0 {
        0
    } else {
        1 + prost::encoding::encoded_len_varint(i64::from(e.code) as u64)
    };
    let message = if e.message.is_empty() {
        0
    } else {
        delimited_len(e.message.len())
    };
    let data = if e.data.is_some() {
        delimited_len(data)
    } else {
        0
    };
    code + message + data
}

impl FastEncode for Response {
    fn encode_fast(&self, buf: &mut impl BufMut) {
        let mut lengths = Lengths::default();
        let result = measure(self.result.as_ref(), &mut lengths);
        let data = measure(
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

impl FastDecode for Response {
    fn decode_fast(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut m = Response::default();
        while !r.is_empty() {
            match r.key()? {
                (1, wire) => m.id = owned(r.message(1, wire)?)?,
                (2, wire) => merge_into(&mut m.result, r.message(2, wire)?, None)?,
                (3, wire) => {
                    let error = m.error.get_or_insert_with(Error::default);
                    merge_error(error, r.message(3, wire)?)?;
                }
                (field, wire) => r.skip(field, wire)?,
            }
        }
        Ok(m)
    }
}

fn merge_error(e: &mut Error, bytes: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        match r.key()? {
            (1, wire) => {
                Reader::expect(1, wire, 0)?;
                // int32 on the wire: a varint whose low 32 bits are the value (protobuf's rule).
                #[allow(clippy::cast_possible_truncation)]
                let code = r.varint()? as i32;
                e.code = code;
            }
            (2, wire) => e.message = owned(r.message(2, wire)?)?,
            (3, wire) => merge_into(&mut e.data, r.message(3, wire)?, None)?,
            (field, wire) => r.skip(field, wire)?,
        }
    }
    Ok(())
}

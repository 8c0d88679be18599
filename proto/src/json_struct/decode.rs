//! Decoding: protobuf bytes read in place (no copy, no `prost_types` tree), straight into
//! `serde_json` values. Merging follows protobuf (and prost): a repeated scalar or oneof field takes
//! the last value; a repeated message field of the same `Struct`/`ListValue` kind merges (map
//! entries by key, the last one winning; list items appended); unknown fields are skipped.

use serde_json::{Map, Value};

use super::MAX_DEPTH;
use crate::structs::number;

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A field runs past the end of its message.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than ten bytes, or a field number out of range.
    #[error("invalid varint or field key")]
    Varint,
    /// A known field with the wrong wire type, or an unknown wire type.
    #[error("invalid wire type {wire} for field {field}")]
    WireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire: u32,
    },
    /// A string field that is not UTF-8.
    #[error("invalid string value: data is not UTF-8 encoded")]
    Utf8,
    /// Objects and arrays nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl DecodeError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Varint => "varint",
            Self::WireType { .. } => "wire_type",
            Self::Utf8 => "utf8",
            Self::TooDeep => "too_deep",
        }
    }
}

/// Wire types (protobuf encoding).
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// A cursor over one message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        prost::encoding::decode_varint(&mut self.buf).map_err(|_| DecodeError::Varint)
    }

    /// The next field's number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, u32), DecodeError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError::Varint)?;
        if field == 0 {
            return Err(DecodeError::Varint);
        }
        // The low three bits: always fits.
        #[allow(clippy::cast_possible_truncation)]
        Ok((field, (key & 7) as u32))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A length-delimited field's bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
        self.take(len)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Utf8)
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(le))
    }

    /// Skips an unknown field's value. Groups (deprecated, never in proto3) are refused.
    pub(crate) fn skip(&mut self, field: u32, wire: u32) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            _ => Err(DecodeError::WireType { field, wire }),
        }
    }

    /// Fails unless `wire` is `expected` for `field`.
    pub(crate) fn expect(field: u32, wire: u32, expected: u32) -> Result<(), DecodeError> {
        if wire == expected {
            Ok(())
        } else {
            Err(DecodeError::WireType { field, wire })
        }
    }

    /// A length-delimited field (after its key of wire type `wire`).
    pub(crate) fn message(&mut self, field: u32, wire: u32) -> Result<&'a [u8], DecodeError> {
        Self::expect(field, wire, LEN)?;
        self.bytes()
    }
}

/// Decodes a `Struct` body as a JSON object (top level: depth 1).
pub fn decode_struct(body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let mut map = Map::new();
    merge_struct(body, &mut map, 1, None)?;
    Ok(map)
}

/// Merges a `Struct` body at JSON depth `depth` into `map`. A map entry whose key is `skip` is
/// dropped without decoding its value (when the key comes first, as every encoder writes it).
pub(crate) fn merge_struct(
    body: &[u8],
    map: &mut Map<String, Value>,
    depth: u32,
    skip: Option<&str>,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let mut r = Reader::new(body);
    while !r.is_empty() {
        match r.key()? {
            (1, wire) => entry(r.message(1, wire)?, map, depth, skip)?,
            (field, wire) => r.skip(field, wire)?,
        }
    }
    Ok(())
}

/// One `fields` map entry: `key` (1) and `value` (2), either absent (`""`, unset → `null`).
fn entry(
    body: &[u8],
    map: &mut Map<String, Value>,
    depth: u32,
    skip: Option<&str>,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    let mut key = "";
    let mut value = None;
    while !r.is_empty() {
        match r.key()? {
            (1, wire) => {
                Reader::expect(1, wire, LEN)?;
                key = r.str()?;
                if value.is_none() && skip == Some(key) {
                    return Ok(());
                }
            }
            (2, wire) => merge_value(r.message(2, wire)?, &mut value, depth)?,
            (field, wire) => r.skip(field, wire)?,
        }
    }
    if skip != Some(key) {
        map.insert(key.to_owned(), value.unwrap_or(Value::Null));
    }
    Ok(())
}

/// Merges a `Value` body into `slot` (`None`: kind unset so far).
fn merge_value(body: &[u8], slot: &mut Option<Value>, depth: u32) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    while !r.is_empty() {
        match r.key()? {
            (1, wire) => {
                Reader::expect(1, wire, VARINT)?;
                r.varint()?;
                *slot = Some(Value::Null);
            }
            (2, wire) => {
                Reader::expect(2, wire, FIXED64)?;
                *slot = Some(number(f64::from_bits(r.fixed64()?)));
            }
            (3, wire) => {
                Reader::expect(3, wire, LEN)?;
                *slot = Some(Value::String(r.str()?.to_owned()));
            }
            (4, wire) => {
                Reader::expect(4, wire, VARINT)?;
                *slot = Some(Value::Bool(r.varint()? != 0));
            }
            (5, wire) => {
                let body = r.message(5, wire)?;
                if !matches!(slot, Some(Value::Object(_))) {
                    *slot = Some(Value::Object(Map::new()));
                }
                if let Some(Value::Object(map)) = slot {
                    merge_struct(body, map, depth + 1, None)?;
                }
            }
            (6, wire) => {
                let body = r.message(6, wire)?;
                if !matches!(slot, Some(Value::Array(_))) {
                    *slot = Some(Value::Array(Vec::new()));
                }
                if let Some(Value::Array(items)) = slot {
                    merge_list(body, items, depth + 1)?;
                }
            }
            (field, wire) => r.skip(field, wire)?,
        }
    }
    Ok(())
}

/// Appends a `ListValue` body's `values` (1) at JSON depth `depth` to `items`.
fn merge_list(body: &[u8], items: &mut Vec<Value>, depth: u32) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let mut r = Reader::new(body);
    while !r.is_empty() {
        match r.key()? {
            (1, wire) => {
                let mut value = None;
                merge_value(r.message(1, wire)?, &mut value, depth)?;
                items.push(value.unwrap_or(Value::Null));
            }
            (field, wire) => r.skip(field, wire)?,
        }
    }
    Ok(())
}

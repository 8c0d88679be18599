//! What the json_struct tests compare with and generate from: prost's own derive of hyper.proto's
//! messages, and a deterministic generator of JSON and `Struct` values.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as PbValue};
use serde_json::{Map, Value, json};

use crate::wire::CLIENT_KEY;

/// hyper.proto's messages as prost derives them: the reference the fast paths are compared with.
pub(super) mod reference {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, tag = "1")]
        pub method: String,
        #[prost(message, optional, tag = "2")]
        pub params: Option<prost_types::Struct>,
        #[prost(string, tag = "3")]
        pub id: String,
        #[prost(string, tag = "4")]
        pub client_name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, optional, tag = "3")]
        pub data: Option<prost_types::Struct>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(message, optional, tag = "2")]
        pub result: Option<prost_types::Struct>,
        #[prost(message, optional, tag = "3")]
        pub error: Option<Error>,
    }
}

/// A small deterministic generator (xorshift), so failures reproduce without a seed file.
pub(super) struct Gen(pub(super) u64);

impl Gen {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn string(&mut self) -> String {
        // Empty keys (skipped by prost), short strings and ones over 127 bytes (two-byte lengths).
        match self.below(5) {
            0 => String::new(),
            1 => "k".repeat(self.below(5) as usize),
            2 => "é".repeat(self.below(200) as usize),
            3 => CLIENT_KEY.to_owned(),
            _ => format!("key-{}", self.below(1000)),
        }
    }

    /// A JSON value as the gateway would parse it.
    pub(super) fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => match self.below(4) {
                0 => json!(0),
                1 => json!(-1.5),
                2 => json!(self.below(1 << 53)),
                _ => json!(-(self.below(1 << 40) as i64)),
            },
            3 | 4 => Value::String(self.string()),
            5 => Value::Object(self.object(depth - 1)),
            _ => Value::Array((0..self.below(5)).map(|_| self.json(depth - 1)).collect()),
        }
    }

    pub(super) fn object(&mut self, depth: u32) -> Map<String, Value> {
        (0..self.below(6))
            .map(|_| (self.string(), self.json(depth)))
            .collect()
    }

    /// A protobuf `Value` as any sender may write it (unset kinds, odd null enums, NaN).
    pub(super) fn pb(&mut self, depth: u32) -> PbValue {
        let kind = match self.below(if depth == 0 { 6 } else { 8 }) {
            0 => None,
            1 => Some(Kind::NullValue(if self.below(5) == 0 { -3 } else { 0 })),
            2 => Some(Kind::NumberValue(match self.below(4) {
                0 => 0.0,
                1 => -1.5,
                2 => f64::NAN,
                _ => self.next() as f64,
            })),
            3 => Some(Kind::StringValue(self.string())),
            4 | 5 => Some(Kind::BoolValue(self.below(2) == 0)),
            6 => Some(Kind::StructValue(self.pb_struct(depth - 1))),
            _ => Some(Kind::ListValue(ListValue {
                values: (0..self.below(5)).map(|_| self.pb(depth - 1)).collect(),
            })),
        };
        PbValue { kind }
    }

    pub(super) fn pb_struct(&mut self, depth: u32) -> Struct {
        Struct {
            fields: (0..self.below(6))
                .map(|_| (self.string(), self.pb(depth)))
                .collect(),
        }
    }
}

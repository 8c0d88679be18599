use prost::Message;

use super::*;

/// A small deterministic generator (xorshift), so failures reproduce without a seed file.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn string(&mut self) -> String {
        // Empty keys (skipped by prost), short strings and ones over 127 bytes (two-byte lengths).
        match self.below(4) {
            0 => String::new(),
            1 => "k".repeat(self.below(5) as usize),
            2 => "é".repeat(self.below(200) as usize),
            _ => format!("key-{}", self.below(1000)),
        }
    }

    fn value(&mut self, depth: u32) -> Value {
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
            4 => Some(Kind::BoolValue(self.below(2) == 0)),
            5 => Some(Kind::BoolValue(false)),
            6 => Some(Kind::StructValue(self.structure(depth - 1))),
            _ => Some(Kind::ListValue(ListValue {
                values: (0..self.below(5)).map(|_| self.value(depth - 1)).collect(),
            })),
        };
        Value { kind }
    }

    fn structure(&mut self, depth: u32) -> Struct {
        Struct {
            fields: (0..self.below(6))
                .map(|_| (self.string(), self.value(depth)))
                .collect(),
        }
    }
}

fn fast<T: FastEncode>(m: &T) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_fast(&mut out);
    out
}

#[test]
fn requests_encode_byte_for_byte_as_prost() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for i in 0..2_000 {
        let r = Request {
            method: if i % 3 == 0 {
                String::new()
            } else {
                g.string()
            },
            params: (i % 5 != 0).then(|| g.structure(1 + (i % 7) as u32)),
            id: g.string(),
            client_name: g.string(),
        };
        assert_eq!(fast(&r), r.encode_to_vec(), "case {i}: {r:?}");
    }
    let empty = Request {
        params: Some(Struct::default()),
        ..Request::default()
    };
    assert_eq!(fast(&empty), empty.encode_to_vec());
    assert_eq!(fast(&Request::default()), Vec::<u8>::new());
}

#[test]
fn responses_and_errors_encode_byte_for_byte_as_prost() {
    let mut g = Gen(42);
    for i in 0..2_000 {
        let error = (i % 2 == 0).then(|| Error {
            code: match i % 4 {
                0 => 0,
                2 => -100,
                _ => 403,
            },
            message: g.string(),
            data: (i % 3 == 0).then(|| g.structure(3)),
        });
        let r = Response {
            id: g.string(),
            result: (i % 3 != 1).then(|| g.structure(1 + (i % 9) as u32)),
            error,
        };
        assert_eq!(fast(&r), r.encode_to_vec(), "case {i}: {r:?}");
    }
}

#[test]
fn a_deep_tree_round_trips_through_prost_decoding() {
    let mut s = Struct::default();
    // 30 JSON levels are 90 protobuf levels (Struct, map entry, Value): under prost's decoding recursion limit of 100.
    for i in 0..30 {
        let mut outer = Struct::default();
        outer.fields.insert(
            format!("level-{i}"),
            Value {
                kind: Some(Kind::StructValue(s)),
            },
        );
        outer.fields.insert(
            "n".into(),
            Value {
                kind: Some(Kind::NumberValue(f64::from(i))),
            },
        );
        s = outer;
    }
    let r = Response {
        id: "x(1)".into(),
        result: Some(s),
        error: None,
    };
    let bytes = fast(&r);
    assert_eq!(bytes, r.encode_to_vec());
    assert_eq!(Response::decode(bytes.as_slice()).unwrap(), r);
}

//! `google.protobuf.Struct` on the wire straight from and to `serde_json` objects: no
//! `prost_types` tree in between.
//!
//! A brokered call used to build every params and result object twice per hop: JSON → `Struct`
//! (a `BTreeMap` of boxed `Value`s) → bytes when sending, bytes → `Struct` → JSON when receiving.
//! A `_ping` answer carries two directory entries (15 KB of JSON, ~600 nested values), so those
//! intermediate trees were a large share of hd-1's and hd-2's CPU per call (`tandem-bench
//! broker`). [`encode`] writes exactly the bytes prost writes for the `Struct` that
//! [`crate::struct_from_map`] makes of the same object (map entries in key order; the tests
//! compare both); [`decode`] reads any valid encoding, as prost then [`crate::into_map`] would.
//!
//! The JSON meaning is SPEC §1's, as in [`crate::structs`]: numbers are doubles on the wire; a
//! double holding an integer of at most 2^53 in magnitude comes back as a JSON integer; NaN and
//! the infinities come back as `null`; an unset `Value` kind is `null`.

pub(crate) mod decode;
mod encode;

pub(crate) use decode::Reader;
pub use decode::{DecodeError, decode_struct};
pub(crate) use encode::{Lengths, Writer, delimited_len};

/// Deepest nesting of objects and arrays a decoded `Struct` may have, in JSON levels: serde_json's
/// own parse limit (128), so that whatever a JSON-RPC gateway accepts, gRPC carries. (prost's
/// limit of 100 protobuf levels allowed only ~33 JSON levels: each is a `Struct`, a map entry and
/// a `Value`.) A deeper message is refused with [`DecodeError::TooDeep`], never a stack overflow.
pub const MAX_DEPTH: u32 = 128;

#[cfg(test)]
mod tests;

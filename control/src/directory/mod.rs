//! The signed service directory (SPEC §3), sans-IO: change records and their byte-exact structured hash, ECDSA P-256
//! signing and verification against the configured CA, chain selection and the entries it yields, permissions and
//! the mTLS identity check (§6.4). Storage and the JSON-RPC server live in `datastore` and `sd`.

pub mod cert;
pub mod decimal;
pub mod entry;
pub mod hash;
pub mod ledger;
pub mod record;
pub mod schema;
mod select;
pub mod signing;
#[cfg(test)]
pub(crate) mod testpki;
pub mod time;
pub mod verify;

pub use record::{
    ChangeRecord, RecordFormatError, Section, Signature, SignedChangeRecord, SignedData,
};
pub use time::RecordTime;

/// Largest accepted JSON encoding of one record, in bytes. Real records are a few KiB (a PEM certificate plus one
/// section's list); 64 KiB bounds memory per record and the cost of hashing one.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

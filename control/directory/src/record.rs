//! Change records (SPEC §3.2): the JSON shapes with the original's exact field names, validated on parse and with
//! `data` schema-normalised (see [`super::schema`]) so that every record held in memory hashes as the original would.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MAX_RECORD_BYTES;
use super::schema::{self, SchemaError};
use super::time::RecordTime;

/// The entry section a record replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// `channels`: list of `{type, settings}`.
    Channels,
    /// `certificates`: list of `{fingerprint, key_usage}`.
    Certificates,
    /// `services`: list of `{name, permissions, methods}`.
    Services,
    /// `preferences`: list of `{operator, service, environment, settings}` (never populates `preferences` maps).
    Preferences,
    /// `settings`: list of `{operator, service, environment, settings}`.
    Settings,
    /// `groups`: list of strings.
    Groups,
}

impl Section {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channels => "channels",
            Self::Certificates => "certificates",
            Self::Services => "services",
            Self::Preferences => "preferences",
            Self::Settings => "settings",
            Self::Groups => "groups",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a record's JSON is not a valid record.
#[derive(Debug, thiserror::Error)]
pub enum RecordFormatError {
    /// Not JSON of the record's shape (or an unknown field).
    #[error("malformed record JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Larger than [`MAX_RECORD_BYTES`].
    #[error("record JSON is {0} bytes, more than the {MAX_RECORD_BYTES} byte limit")]
    TooLarge(usize),
    /// `name` is empty (the original accepted it; Tandem rejects a record that names no operator).
    #[error("record name is empty")]
    EmptyName,
    /// `hash` is not 64 lowercase hex characters.
    #[error("hash must be 64 lowercase hex characters")]
    BadHash,
    /// `parent_hash` is neither empty nor 64 lowercase hex characters.
    #[error("parent_hash must be empty or 64 lowercase hex characters")]
    BadParentHash,
    /// `signature.r` / `signature.s` is not `^\d{10,100}$`.
    #[error("signature r and s must be 10 to 100 decimal digits")]
    BadSignatureNumber,
    /// `data` does not fit the section's schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// A change to one section of one operator's entry (`ChangeRecord`). `data` is always schema-normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawChangeRecord")]
pub struct ChangeRecord {
    /// Operator name.
    pub name: String,
    /// Section replaced.
    pub section: Section,
    /// The section's new list (normalised).
    pub data: Value,
    /// Creation time; decides chain selection among reset roots.
    pub created_at: RecordTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChangeRecord {
    name: String,
    section: Section,
    data: Value,
    created_at: RecordTime,
}

impl TryFrom<RawChangeRecord> for ChangeRecord {
    type Error = RecordFormatError;
    fn try_from(raw: RawChangeRecord) -> Result<Self, Self::Error> {
        Self::new(raw.name, raw.section, &raw.data, raw.created_at)
    }
}

impl ChangeRecord {
    /// Builds a record, normalising `data` for `section`.
    pub fn new(
        name: String,
        section: Section,
        data: &Value,
        created_at: RecordTime,
    ) -> Result<Self, RecordFormatError> {
        if name.is_empty() {
            return Err(RecordFormatError::EmptyName);
        }
        let data = schema::normalise(section, data)?;
        Ok(Self {
            name,
            section,
            data,
            created_at,
        })
    }
}

/// An ECDSA signature: `r`, `s` as base-10 integers, `c` the signer's leaf certificate PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// r, decimal.
    pub r: String,
    /// s, decimal.
    pub s: String,
    /// Signer certificate PEM (only the first block is read).
    pub c: String,
}

impl Signature {
    fn validate(&self) -> Result<(), RecordFormatError> {
        let ok = |n: &str| (10..=100).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit());
        if ok(&self.r) && ok(&self.s) {
            Ok(())
        } else {
            Err(RecordFormatError::BadSignatureNumber)
        }
    }
}

/// A record as stored and served (`SignedChangeRecord`). Field order matches the original's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSignedChangeRecord")]
pub struct SignedChangeRecord {
    /// Hash of the previous record in the chain; empty for a root.
    pub parent_hash: String,
    /// Hash of `record` (lowercase hex).
    pub hash: String,
    /// Absent only while signing; verification requires it.
    pub signature: Option<Signature>,
    /// The change.
    pub record: ChangeRecord,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignedChangeRecord {
    #[serde(default)]
    parent_hash: String,
    hash: String,
    #[serde(default)]
    signature: Option<Signature>,
    record: ChangeRecord,
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TryFrom<RawSignedChangeRecord> for SignedChangeRecord {
    type Error = RecordFormatError;
    fn try_from(raw: RawSignedChangeRecord) -> Result<Self, Self::Error> {
        if !is_hash(&raw.hash) {
            return Err(RecordFormatError::BadHash);
        }
        if !raw.parent_hash.is_empty() && !is_hash(&raw.parent_hash) {
            return Err(RecordFormatError::BadParentHash);
        }
        if let Some(signature) = &raw.signature {
            signature.validate()?;
        }
        Ok(Self {
            parent_hash: raw.parent_hash,
            hash: raw.hash,
            signature: raw.signature,
            record: raw.record,
        })
    }
}

impl SignedChangeRecord {
    /// Parses one record from JSON bytes, enforcing [`MAX_RECORD_BYTES`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordFormatError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordFormatError::TooLarge(bytes.len()));
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Serialises to JSON (the stored and served form).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("a record is plain JSON data with string keys; serialising it cannot fail")
    }

    /// True for a root record (starts a chain).
    pub fn is_root(&self) -> bool {
        self.parent_hash.is_empty()
    }
}

/// The generic signed envelope of `hyper sd sign`: `{"signature": {r, s, c}, "data": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedData {
    /// The signature over `StructuredHash(data)`.
    pub signature: Signature,
    /// Any JSON value (not normalised).
    pub data: Value,
}

//! `expires_at` in JSON: RFC 3339 text or `null` (absent means `null`). Decoding is strict RFC 3339
//! (`DateTime::parse_from_rfc3339`, as the proxies always parsed it); encoding is chrono's own form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serialises as chrono does (`null` for `None`).
pub fn serialize<S: Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.serialize(serializer)
}

/// `null` → `None`; an RFC 3339 string → its instant; anything else is an error.
pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom),
    }
}

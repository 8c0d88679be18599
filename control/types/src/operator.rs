//! [`OperatorName`]: the name of an operator (SPEC §2, §6.2), the key of its directory entry, the
//! name its certificates carry and the head of the addressable ids routed to it
//! (`<operator>.<method>(<id>)`).

use std::borrow::Borrow;
use std::fmt;

/// Longest operator name, in bytes: a DNS name (the name is a certificate's CN and DNS SAN)
/// is at most 253 characters; 255 leaves room and bounds every name a peer sends us.
pub const MAX_OPERATOR_NAME_BYTES: usize = 255;

/// An operator name: 1 to [`MAX_OPERATOR_NAME_BYTES`] bytes with no whitespace, no control
/// character and no `(` or `)` (which delimit the original id in an addressable id). Dots are
/// allowed (`public-proxy-1.ga`). Comparison is exact (case-sensitive), as the directory's keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorName(String);

/// Why a text is not an operator name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorNameError {
    /// The empty string.
    #[error("operator name is empty")]
    Empty,
    /// Longer than [`MAX_OPERATOR_NAME_BYTES`].
    #[error("operator name is longer than {MAX_OPERATOR_NAME_BYTES} bytes")]
    TooLong,
    /// Contains whitespace, a control character, `(` or `)`.
    #[error("operator name contains {0:?}")]
    BadCharacter(char),
}

impl OperatorName {
    /// Validates `name` (see the type's docs).
    pub fn new(name: impl Into<String>) -> Result<Self, OperatorNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(OperatorNameError::Empty);
        }
        if name.len() > MAX_OPERATOR_NAME_BYTES {
            return Err(OperatorNameError::TooLong);
        }
        if let Some(c) = name
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '(' | ')'))
        {
            return Err(OperatorNameError::BadCharacter(c));
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for OperatorName {
    type Error = OperatorNameError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl TryFrom<&str> for OperatorName {
    type Error = OperatorNameError;
    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl std::str::FromStr for OperatorName {
    type Err = OperatorNameError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl From<OperatorName> for String {
    fn from(name: OperatorName) -> String {
        name.0
    }
}

impl AsRef<str> for OperatorName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for OperatorName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for OperatorName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for OperatorName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for OperatorName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<OperatorName> for String {
    fn eq(&self, other: &OperatorName) -> bool {
        *self == other.0
    }
}

impl PartialEq<OperatorName> for str {
    fn eq(&self, other: &OperatorName) -> bool {
        self == other.0
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl serde::Serialize for OperatorName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OperatorName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::new(name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_original_deployments_are_valid() {
        for name in [
            "hd-1",
            "public-proxy-1.ga",
            "a.b.c.d.e",
            "private-proxy-hyper-1",
        ] {
            let op = OperatorName::new(name).unwrap();
            assert_eq!(op, name);
            assert_eq!(op.to_string(), name);
        }
    }

    #[test]
    fn empty_long_and_odd_names_are_refused_with_the_reason() {
        assert_eq!(OperatorName::new(""), Err(OperatorNameError::Empty));
        let long = "a".repeat(MAX_OPERATOR_NAME_BYTES + 1);
        assert_eq!(OperatorName::new(long), Err(OperatorNameError::TooLong));
        assert!(OperatorName::new("a".repeat(MAX_OPERATOR_NAME_BYTES)).is_ok());
        for (bad, c) in [("hd 1", ' '), ("hd-1)", ')'), ("x(1", '('), ("a\nb", '\n')] {
            assert_eq!(
                OperatorName::new(bad),
                Err(OperatorNameError::BadCharacter(c))
            );
        }
    }

    #[test]
    fn json_is_a_plain_string_and_decoding_validates() {
        let op = OperatorName::new("hd-1").unwrap();
        assert_eq!(serde_json::to_string(&op).unwrap(), "\"hd-1\"");
        assert_eq!(
            serde_json::from_str::<OperatorName>("\"hd-1\"").unwrap(),
            op
        );
        let err = serde_json::from_str::<OperatorName>("\"\"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(serde_json::from_str::<OperatorName>("1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn accepted_names_round_trip_and_refusals_name_the_rule(text in "\\PC{0,300}|[a-z0-9.() -]{0,20}") {
            match OperatorName::new(text.clone()) {
                Ok(name) => {
                    proptest::prop_assert_eq!(name.as_str(), text.as_str());
                    let json = serde_json::to_string(&name).unwrap();
                    proptest::prop_assert_eq!(serde_json::from_str::<OperatorName>(&json).unwrap(), name);
                }
                Err(OperatorNameError::Empty) => proptest::prop_assert!(text.is_empty()),
                Err(OperatorNameError::TooLong) => {
                    proptest::prop_assert!(text.len() > MAX_OPERATOR_NAME_BYTES)
                }
                Err(OperatorNameError::BadCharacter(c)) => proptest::prop_assert!(text.contains(c)),
            }
        }
    }
}

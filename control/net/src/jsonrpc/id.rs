//! JSON-RPC ids and the original's internal string form.
//!
//! The original Hyper keeps every id as a string internally: an integer id `5` travels as `n:5`, and a
//! string that already looks like that form is escaped by doubling the `n`s (`n:5` → `nn:5`). On the way
//! out the conversion is reversed, so a caller always gets back the id type it sent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest string id accepted, in bytes (the original's form allows 0..1024 characters).
pub const MAX_ID_LEN: usize = 1024;

/// A JSON-RPC id as the client sent it: a string or an integer in the int32 range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// An integer id (int32 range, as the original validates).
    Num(i64),
    /// A string id.
    Str(String),
}

impl Id {
    /// The original's internal string form: `n:<int>` for integers, strings escaped by doubling the
    /// leading `n`s when they already look like `n+:<int>`.
    pub fn to_internal(&self) -> String {
        match self {
            Id::Num(n) => format!("n:{n}"),
            Id::Str(s) => match split_numeric_form(s) {
                Some((ns, rest)) => format!("n{ns}:{rest}"),
                None => s.clone(),
            },
        }
    }

    /// Reverses [`Id::to_internal`].
    pub fn from_internal(s: &str) -> Id {
        match split_numeric_form(s) {
            Some((ns, rest)) if ns.len() == 1 => match rest.parse::<i64>() {
                Ok(n) => Id::Num(n),
                Err(_) => Id::Str(s.to_owned()),
            },
            Some((ns, rest)) => Id::Str(format!("{}:{rest}", &ns[1..])),
            None => Id::Str(s.to_owned()),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

/// Splits `n+:<-?digits{1,32}>` into the run of `n`s and the number part.
fn split_numeric_form(s: &str) -> Option<(&str, &str)> {
    let (ns, rest) = s.split_once(':')?;
    if ns.is_empty() || !ns.bytes().all(|b| b == b'n') {
        return None;
    }
    let digits = rest.strip_prefix('-').unwrap_or(rest);
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ns, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_round_trip() {
        for id in [
            Id::Num(5),
            Id::Num(-7),
            Id::Str("abc".into()),
            Id::Str("n:5".into()),
            Id::Str("nn:-3".into()),
            Id::Str("n:".into()),
            Id::Str("x:5".into()),
        ] {
            assert_eq!(Id::from_internal(&id.to_internal()), id, "{id:?}");
        }
    }

    #[test]
    fn internal_forms_match_the_original() {
        assert_eq!(Id::Num(5).to_internal(), "n:5");
        assert_eq!(Id::Str("n:5".into()).to_internal(), "nn:5");
        assert_eq!(Id::Str("nn:5".into()).to_internal(), "nnn:5");
        assert_eq!(Id::Str("1".into()).to_internal(), "1");
    }
}

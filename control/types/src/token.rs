//! [`Token`]: the pairing token (SPEC §4.6), one type for the engine that admits it, the proxy
//! that issues it and the Hyper node and private proxy that present it. 32 random bytes, written
//! raw as the first bytes on a pairing port and carried as standard padded base64 in JSON-RPC.

use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Length of a token on the wire, in bytes (SPEC §4.6: the client writes 32 raw bytes).
pub const TOKEN_LEN: usize = 32;
/// Longest base64 text [`Token::from_base64`] decodes, in characters: 32 bytes are 44 padded
/// characters; anything longer is refused before decoding, so a peer cannot make us decode
/// megabytes.
pub const MAX_TOKEN_BASE64_CHARS: usize = 64;

/// A single-use pairing token: a bearer secret. Compared in constant time; never printed whole
/// (`Debug`/`Display` show the first 4 bytes in hex only).
#[derive(Clone, Copy)]
pub struct Token([u8; TOKEN_LEN]);

/// Why a text is not a token's base64 form. Never carries the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BASE64_CHARS`].
    #[error("longer than {MAX_TOKEN_BASE64_CHARS} characters")]
    TooLong,
    /// Not standard padded base64.
    #[error("not standard base64")]
    NotBase64,
    /// Decodes to a number of bytes other than [`TOKEN_LEN`].
    #[error("{0} bytes, expected {TOKEN_LEN}")]
    WrongLength(usize),
}

impl Token {
    /// Wraps raw bytes (for example the 32 bytes a peer wrote).
    pub fn from_bytes(bytes: [u8; TOKEN_LEN]) -> Self {
        Token(bytes)
    }

    /// Draws a fresh token from the thread-local CSPRNG (ChaCha, reseeded from the OS).
    pub fn random() -> Self {
        let mut bytes = [0u8; TOKEN_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Token(bytes)
    }

    /// The raw bytes (what is written to the pairing port).
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// A short, non-secret prefix for logs (8 hex digits).
    pub fn prefix(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Decodes standard (padded) base64 that must hold exactly [`TOKEN_LEN`] bytes.
    pub fn from_base64(text: &str) -> Result<Self, TokenError> {
        if text.len() > MAX_TOKEN_BASE64_CHARS {
            return Err(TokenError::TooLong);
        }
        let bytes = STANDARD.decode(text).map_err(|_| TokenError::NotBase64)?;
        let bytes: [u8; TOKEN_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| TokenError::WrongLength(b.len()))?;
        Ok(Token(bytes))
    }

    /// The standard padded base64 form (what travels in JSON-RPC; 44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

/// The raw bytes, for writers that take any byte source.
impl AsRef<[u8]> for Token {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Token {}

impl Hash for Token {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", self.prefix())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.prefix())
    }
}

/// In JSON a token is its base64 text (SPEC §4.3); decoding goes through [`Token::from_base64`].
impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Token;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "standard base64 of exactly {TOKEN_LEN} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Token, E> {
                Token::from_base64(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_show_only_a_prefix() {
        let t = Token::from_bytes([0xab; 32]);
        assert_eq!(format!("{t}"), "abababab…");
        assert_eq!(format!("{t:?}"), "Token(abababab…)");
    }

    #[test]
    fn equality_is_by_value() {
        let a = Token::from_bytes([1; 32]);
        let mut other = [1; 32];
        assert_eq!(a, Token::from_bytes(other));
        other[31] = 2;
        assert_ne!(a, Token::from_bytes(other));
        assert_ne!(Token::random(), Token::random());
    }

    #[test]
    fn base64_is_standard_padded_and_exactly_32_bytes() {
        let token = Token::from_bytes([7; 32]);
        let text = token.to_base64();
        assert_eq!(text.len(), 44);
        assert_eq!(text, STANDARD.encode([7u8; 32]));
        assert_eq!(Token::from_base64(&text).unwrap(), token);
        for (bad, want) in [
            (STANDARD.encode([1u8; 31]), TokenError::WrongLength(31)),
            (STANDARD.encode([1u8; 33]), TokenError::WrongLength(33)),
            ("not base64!".to_owned(), TokenError::NotBase64),
            ("A".repeat(MAX_TOKEN_BASE64_CHARS + 4), TokenError::TooLong),
            (String::new(), TokenError::WrongLength(0)),
        ] {
            assert_eq!(Token::from_base64(&bad).unwrap_err(), want, "{bad}");
        }
    }

    #[test]
    fn json_carries_the_base64_text() {
        let token = Token::from_bytes([0xab; 32]);
        let json = serde_json::to_string(&token).unwrap();
        assert_eq!(json, format!("\"{}\"", token.to_base64()));
        assert_eq!(serde_json::from_str::<Token>(&json).unwrap(), token);
        let err = serde_json::from_str::<Token>("\"AAAA\"").unwrap_err();
        assert!(err.to_string().contains("3 bytes, expected 32"), "{err}");
        assert!(serde_json::from_str::<Token>("5").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_token_round_trips_through_base64_and_json(bytes in proptest::array::uniform32(0u8..)) {
            let token = Token::from_bytes(bytes);
            proptest::prop_assert_eq!(Token::from_base64(&token.to_base64()), Ok(token));
            let json = serde_json::to_string(&token).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Token>(&json).unwrap(), token);
        }

        #[test]
        fn any_text_decodes_or_is_refused_without_panicking(text in ".{0,80}") {
            if let Ok(token) = Token::from_base64(&text) {
                proptest::prop_assert_eq!(token.to_base64(), text);
            }
        }
    }
}

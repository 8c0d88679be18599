//! Tokens: 32 random bytes that admit one connection to one side of a pair, once. The type
//! is `tandem_types::Token` (one token type for every crate), re-exported here.

use std::fmt;
use std::hash::Hasher;

pub use tandem_types::token::{TOKEN_LEN, Token};

/// Index of a worker core (0-based position in the configured core list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(pub usize);

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Maps a token to the core that owns it with a keyed hash (SipHash with a per-engine random
/// key), so that an outsider cannot aim tokens at one core.
#[derive(Clone, Debug)]
pub struct TokenMap {
    /// SipHash key (random per engine; handed to the next process in a binary upgrade, so
    /// that a token reaches the same core there).
    key: [u64; 2],
    cores: usize,
}

impl TokenMap {
    /// A map over `cores` cores (at least 1) with a fresh random key.
    pub fn new(cores: usize) -> Self {
        Self::with_key(cores, rand::random())
    }

    /// A map over `cores` cores with `key` (a binary upgrade's inherited map).
    pub fn with_key(cores: usize, key: [u64; 2]) -> Self {
        TokenMap {
            key,
            cores: cores.max(1),
        }
    }

    /// The map's key.
    pub fn key(&self) -> [u64; 2] {
        self.key
    }

    /// Number of cores the map spreads tokens over.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// The core that owns `token`.
    pub fn owner(&self, token: &Token) -> CoreId {
        // SipHash-2-4 with an explicit key: std's `SipHasher` is deprecated only in favour of
        // `RandomState`, whose key cannot be read back, and the key must travel to the next
        // process.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(self.key[0], self.key[1]);
        h.write(token.as_bytes());
        // Modulo over a 64-bit keyed hash: the bias is below 2^-50 for any core count we run.
        CoreId((h.finish() % self.cores as u64) as usize)
    }

    /// Draws tokens until one maps to `core`. Bounded: after `MAX_DRAWS_PER_CORE * cores`
    /// draws (probability (1-1/n)^(64n) < 2^-90) the last token is returned with its real owner.
    pub fn token_for(&self, core: CoreId) -> (Token, CoreId) {
        let mut token = Token::random();
        for _ in 0..MAX_DRAWS_PER_CORE * self.cores {
            if self.owner(&token) == core {
                return (token, core);
            }
            token = Token::random();
        }
        let owner = self.owner(&token);
        (token, owner)
    }
}

/// Draws per core before giving up on hitting the chosen core (see [`TokenMap::token_for`]).
const MAX_DRAWS_PER_CORE: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_only_a_prefix() {
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
    }

    #[test]
    fn token_for_hits_the_chosen_core() {
        let map = TokenMap::new(4);
        for core in 0..4 {
            let (t, owner) = map.token_for(CoreId(core));
            assert_eq!(owner, CoreId(core));
            assert_eq!(map.owner(&t), CoreId(core));
        }
    }

    #[test]
    fn a_map_with_the_same_key_routes_every_token_alike() {
        let map = TokenMap::new(4);
        let copy = TokenMap::with_key(4, map.key());
        let other = TokenMap::new(4);
        let tokens: Vec<Token> = (0..200).map(|_| Token::random()).collect();
        assert!(tokens.iter().all(|t| map.owner(t) == copy.owner(t)));
        assert!(tokens.iter().any(|t| map.owner(t) != other.owner(t)));
    }

    #[test]
    fn owners_spread_over_cores() {
        let map = TokenMap::new(2);
        let on_zero = (0..1000)
            .filter(|_| map.owner(&Token::random()) == CoreId(0))
            .count();
        assert!((350..650).contains(&on_zero), "{on_zero}");
    }
}

//! Sans-IO reader of the 32-byte token preamble (SPEC §4.6). Unlike the original, which did
//! one `Read` and refused a token split across segments, this accepts any split.

use crate::token::{TOKEN_LEN, Token};

/// Accumulates exactly [`TOKEN_LEN`] bytes; never consumes a byte past the token.
#[derive(Debug, Default)]
pub struct TokenReader {
    buf: [u8; TOKEN_LEN],
    filled: usize,
}

impl TokenReader {
    /// An empty reader.
    pub fn new() -> Self {
        TokenReader::default()
    }

    /// The slice the next read should fill (never more than the token still needs).
    pub fn unfilled(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Records that `n` bytes were written into [`TokenReader::unfilled`].
    pub fn advance(&mut self, n: usize) {
        self.filled = (self.filled + n).min(TOKEN_LEN);
    }

    /// Copies bytes from `input`; returns how many were taken (the rest belong to the stream).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let take = input.len().min(TOKEN_LEN - self.filled);
        self.buf[self.filled..self.filled + take].copy_from_slice(&input[..take]);
        self.filled += take;
        take
    }

    /// Bytes received so far.
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// The token once all 32 bytes are in.
    pub fn token(&self) -> Option<Token> {
        (self.filled == TOKEN_LEN).then(|| Token::from_bytes(self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_byte_at_a_time() {
        let mut r = TokenReader::new();
        for i in 0..32u8 {
            assert!(r.token().is_none());
            assert_eq!(r.feed(&[i]), 1);
        }
        let mut want = [0u8; 32];
        for (i, b) in want.iter_mut().enumerate() {
            *b = i as u8;
        }
        assert_eq!(r.token(), Some(Token::from_bytes(want)));
    }

    #[test]
    fn extra_bytes_are_not_consumed() {
        let mut r = TokenReader::new();
        assert_eq!(r.feed(&[7; 40]), 32);
        assert_eq!(r.feed(&[7; 4]), 0);
        assert!(r.token().is_some());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_token(bytes in proptest::array::uniform32(any::<u8>()),
                                          cuts in proptest::collection::vec(0usize..32, 0..8)) {
            let mut cuts = cuts;
            cuts.push(32);
            cuts.sort_unstable();
            let mut r = TokenReader::new();
            let mut at = 0;
            for c in cuts {
                at += r.feed(&bytes[at..c.max(at)]);
            }
            prop_assert_eq!(r.token(), Some(Token::from_bytes(bytes)));
        }
    }
}

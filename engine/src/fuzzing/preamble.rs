//! Token preamble: any split of the stream yields the first 32 bytes as the token and never consumes more.

use super::Cuts;
use crate::preamble::TokenReader;
use crate::token::TOKEN_LEN;

/// Feeds at most this many segments before handing over the rest whole (bounds the loop on all-zero cuts).
const MAX_SEGMENTS: usize = 256;

/// Input: `[n][n cut sizes][stream]`. Feeds the stream through [`TokenReader`] in the given cuts, alternating
/// between `feed` and the `unfilled`/`advance` path the socket code uses, and checks that exactly
/// `min(len, 32)` bytes are consumed and that the token, once complete, is the stream's first 32 bytes.
pub fn token_preamble(data: &[u8]) {
    let (mut cuts, stream) = Cuts::split(data);
    let mut reader = TokenReader::new();
    let mut at = 0;
    for segment in 0..MAX_SEGMENTS {
        if at == stream.len() || reader.token().is_some() {
            break;
        }
        let end = at.saturating_add(cuts.next_size()).min(stream.len());
        let offered = end - at;
        let took = push(&mut reader, &stream[at..end], segment % 2 == 1);
        assert!(took <= offered, "took more than offered");
        at += took;
        assert_eq!(reader.filled(), at, "filled() disagrees with bytes taken");
        if took < offered {
            assert!(
                reader.token().is_some(),
                "left bytes while the token was incomplete"
            );
        }
    }
    at += reader.feed(&stream[at..]);
    let want = stream.len().min(TOKEN_LEN);
    assert_eq!(at, want, "consumed bytes past the token or stopped short");
    assert_eq!(reader.filled(), want);
    assert_eq!(
        reader.feed(&stream[at..]),
        0,
        "a full reader took more bytes"
    );
    match reader.token() {
        Some(token) => assert_eq!(&token.as_bytes()[..], &stream[..TOKEN_LEN]),
        None => assert!(stream.len() < TOKEN_LEN, "complete stream gave no token"),
    }
}

/// One segment through `feed`, or through `unfilled` + `advance` (as a socket read would).
fn push(reader: &mut TokenReader, segment: &[u8], by_advance: bool) -> usize {
    if !by_advance {
        return reader.feed(segment);
    }
    let room = reader.unfilled();
    let n = room.len().min(segment.len());
    room[..n].copy_from_slice(&segment[..n]);
    reader.advance(n);
    n
}

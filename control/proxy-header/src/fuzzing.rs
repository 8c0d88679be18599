//! The checks the `proxy_header` fuzz target (and the corpus replay test) runs on arbitrary
//! bytes: the reader never panics, never takes more than it is given, never takes a byte past a
//! complete header, and gives the same answer however the bytes are split.

use crate::reader::{DEFAULT_MAX_HEADER_BYTES, HeaderReader};
use crate::{HeaderError, ProxyHeader};

/// What reading a whole stream came to: the header or the error, and the bytes taken.
type Outcome = (Result<Option<ProxyHeader>, HeaderError>, usize);

/// Feeds `stream` in the pieces `sizes` gives (cycled; a size 0 counts as 1), stopping once the
/// reader finishes; with `by_want`, no piece is longer than the reader's [`HeaderReader::want`].
fn read(stream: &[u8], sizes: &[u8], by_want: bool) -> Outcome {
    let mut r = HeaderReader::new(DEFAULT_MAX_HEADER_BYTES);
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let mut size =
            usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(255)).max(1);
        if by_want {
            size = size.min(r.want().max(1));
        }
        i += 1;
        let end = (at + size).min(stream.len());
        match r.feed(&stream[at..end]) {
            Ok(feed) => {
                let offered = end - at;
                assert!(feed.consumed <= offered, "took more than offered");
                at += feed.consumed;
                if feed.header.is_some() {
                    assert_eq!(r.want(), 0, "a finished reader wants more");
                    return (Ok(feed.header), at);
                }
                assert_eq!(
                    feed.consumed, offered,
                    "left bytes while the header was incomplete"
                );
            }
            Err(e) => return (Err(e), at),
        }
    }
    (Ok(None), at)
}

/// Input layout: byte 0 = n, the next n bytes = piece sizes, the rest = the stream.
pub fn proxy_header(data: &[u8]) {
    let n = usize::from(data.first().copied().unwrap_or(0));
    let sizes = data.get(1..1 + n).unwrap_or(&[]);
    let stream = data.get(1 + n..).unwrap_or(&[]);
    let whole = read(stream, &[255], false);
    let split = read(stream, sizes, false);
    let wanted = read(stream, sizes, true);
    // Errors carry no position, so "the same" is the same result; bytes taken agree for headers.
    assert_eq!(whole.0, split.0, "a split changed the result");
    assert_eq!(whole.0, wanted.0, "reading by want() changed the result");
    if let Ok(Some(_)) = whole.0 {
        assert_eq!(whole.1, split.1, "a split changed where the header ends");
        assert_eq!(whole.1, wanted.1);
    }
}

#[cfg(test)]
mod tests {
    /// Replays the committed corpus (`fuzz/corpus/proxy_header/`) through the fuzz target's checks,
    /// so `make test` catches a regression on any input a fuzzer once found interesting.
    #[test]
    fn proxy_header_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/proxy_header");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| super::proxy_header(&bytes));
            assert!(
                outcome.is_ok(),
                "corpus input {} fails its check",
                path.display()
            );
            n += 1;
        }
        assert!(n > 0, "corpus {} is empty", dir.display());
    }
}

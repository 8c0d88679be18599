//! Fuzz checks for the engine's sans-IO cores, shared by the `tandem-fuzz` targets and the corpus replay test
//! (`tests/integration/fuzz_corpus.rs`). Each function takes arbitrary bytes, drives the real public API and panics when an
//! invariant breaks; any input must return normally otherwise. Not a stable API.

mod handover;
mod hello;
mod pairs;
mod preamble;

pub use handover::handover_frame;
pub use hello::client_hello;
pub use pairs::pair_table;
pub use preamble::token_preamble;

/// Splits an input into a header of segment sizes and the payload: byte 0 is the number of size bytes that follow
/// (at most [`MAX_CUTS`]); the sizes are then used in turn, cyclically, to cut the payload into segments.
pub(crate) struct Cuts<'a> {
    sizes: &'a [u8],
    next: usize,
}

/// Most segment sizes an input may carry (bytes of header); enough to express any interesting split pattern.
pub(crate) const MAX_CUTS: usize = 16;

impl<'a> Cuts<'a> {
    /// `(cuts, payload)`; an empty input has no cuts and no payload.
    pub(crate) fn split(data: &'a [u8]) -> (Self, &'a [u8]) {
        let Some((&n, rest)) = data.split_first() else {
            return (
                Cuts {
                    sizes: &[],
                    next: 0,
                },
                &[],
            );
        };
        let n = usize::from(n).min(MAX_CUTS).min(rest.len());
        let (sizes, payload) = rest.split_at(n);
        (Cuts { sizes, next: 0 }, payload)
    }

    /// The next segment size (0 is a legal, empty segment); with no sizes, the whole rest in one segment.
    pub(crate) fn next_size(&mut self) -> usize {
        if self.sizes.is_empty() {
            return usize::MAX;
        }
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        usize::from(size)
    }
}

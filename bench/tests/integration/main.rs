//! The integration tests of tandem-bench, linked into one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared set-up (declared first: the macros they define are used by the suites below).

// The suites, one module per concern.
mod inproc;
mod remote;

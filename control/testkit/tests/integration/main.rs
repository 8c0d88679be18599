//! Integration tests of tandem-testkit: the committed fuzz corpus replayed through the fuzz checks.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fuzz_corpus;

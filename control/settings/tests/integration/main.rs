//! Integration tests of tandem-settings: the loader on real files and every role under `settings/`.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod loader;
mod roles;

//! Integration tests of tandem-datastore: the datastore contract on both backends (file and a real redis-server), each backend's specifics, compaction, crash safety.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;
mod crash;
mod file_backend;
mod redis_backend;
mod replace;
mod shared_redis;
mod support;

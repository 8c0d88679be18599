//! Integration tests of tandem-sd: the directory server in-process over real mTLS, on the file datastore and on a real redis-server.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_datastore;
mod server;
mod shared_redis;

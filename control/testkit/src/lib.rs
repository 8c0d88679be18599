//! Test support for Tandem's suites, kept out of production code: a dev-dependency only (no
//! production crate depends on this one; `cargo tree -e normal` shows it nowhere).
//!
//! - [`pki`]: one test PKI ([`pki::TestPki`]): the dev layout `hyper certs` writes, plus signing
//!   leaves issued on demand from its intermediate.
//! - [`redis`]: a real `redis-server` on a free port ([`redis::RedisServer`]).
//! - [`sentinel`]: a primary, its replicas and three Sentinels ([`sentinel::SentinelSet`]).
//! - [`poll`]: the one bounded poll for state that offers no notification.
//! - [`process`]: our binaries as child processes (stderr lines, bounded waits for a log line or a
//!   listener address, SIGTERM), free port blocks, the repository root.
//! - [`hostile`]: hostile clients (silent, idle-TLS, flooding) from chosen 127.0.0.x sources.
//! - [`netns`]: network namespaces a test makes: one isolated namespace, or a private LAN of
//!   namespaces around a bridge in a namespace of its own (nothing reachable from the host).
//! - [`metrics`]: a plain `/metrics` GET and a strict Prometheus text parser.
//! - [`sd`], [`hyper_node`], [`grpc`]: in-process `sd`, Hyper server and gRPC fixtures on 127.0.0.1:0.
//! - [`fuzzing`]: the checks the fuzz targets (`fuzz/`) and the corpus replay test share.
//!
//! Everything here may panic (`unwrap`, `expect`): a failed set-up is a failed test.
//!
//! Crates this one depends on (tandem-directory, -net, -hyper, -sd ...) cannot use types of theirs
//! that pass through this crate in their own *unit* tests (those see a second copy of the crate);
//! such tests use the plain data this crate returns (paths, ports, PEM and DER bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fuzzing;
pub mod grpc;
pub mod hostile;
pub mod hyper_node;
pub mod metrics;
pub mod netns;
pub mod pki;
pub mod poll;
pub mod process;
pub mod redis;
pub mod sd;
pub mod sentinel;

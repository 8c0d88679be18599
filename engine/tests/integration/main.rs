//! The integration tests of tandem-engine, linked into one test binary.
//!
//! nextest runs every test in its own process, so the suites keep their isolation (rlimits, ports).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared set-up (declared first: the macros they define are used by the suites below).
#[macro_use]
mod abuse_support;
#[macro_use]
mod common;

// The suites, one module per concern.
mod abuse_accept_rate;
mod abuse_hello;
mod abuse_limiter;
mod abuse_memory;
mod abuse_sni_budget;
mod abuse_tokens;
mod bandwidth;
mod clienthello_corpus;
mod dual_stack;
mod fuzz_corpus;
mod handover;
mod handover_limits;
mod haproxy;
mod idle_pairs;
mod pairing;
mod parking;
mod proxy_protocol;
mod relay;

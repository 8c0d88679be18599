//! The integration and system tests of the `tandem` package, linked into one test binary.
//!
//! One binary instead of one per file: each of these links the whole control plane (tokio, tonic,
//! axum, rustls), so fifty binaries cost minutes of linking and gigabytes of disk in CI. nextest
//! still runs every test in its own process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared set-up (declared first: the macros they define are used by the suites below).
mod abuse_support;
mod control_service_support;
mod datastore_common;
mod gaps_support;
mod grpc_support;
mod hostile_support;
mod hyper_support;
mod identity_support;
mod metrics_support;
mod p2p_support;
mod poll_support;
mod proxy_support;
mod reliability_support;
mod sd_common;
mod seed_support;
mod sni_support;

// The suites, one module per concern.
mod abuse_proxy_drain;
mod abuse_proxy_flood;
mod abuse_proxy_sni;
mod announce_owners;
mod binaries_link;
mod certs_dev_pki;
mod check_settings;
mod control_service_authz;
mod control_service_ctl;
mod control_service_drain;
mod control_service_pairs;
mod datastore_crash;
mod datastore_file;
mod datastore_redis;
mod datastore_replace;
mod datastore_suite;
mod deploy_units;
mod dirclient_api;
mod dirclient_json;
mod docs_settings;
mod forward_proxy;
mod fuzz_corpus;
mod gaps_lying_sd;
mod gaps_private_timeouts;
mod gaps_proxy_redis;
mod grpc_call;
mod grpc_compat;
mod grpc_faults;
mod grpc_reverse;
mod hostile_deadlines;
mod hostile_kit;
mod hostile_listeners;
mod hyper_e2e;
mod hyper_gateway;
mod hyper_gateway_tls;
mod identity_endpoints;
mod identity_names;
mod metrics_binaries;
mod metrics_cli_completions;
mod metrics_hyper;
mod metrics_private_proxy;
mod metrics_proxy;
mod migration;
mod p2p_brokered;
mod proxy_faults;
mod proxy_private;
mod proxy_public;
mod proxy_sni;
mod reliability_identity;
mod reliability_timeouts;
mod reliability_tokens;
mod sd_e2e;
mod sd_faults;
mod sd_metrics;
mod sd_redis;
mod sd_server;
mod seed_scenario;
mod settings_loader;
mod settings_roles;
mod tls_handshake;

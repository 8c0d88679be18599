//! Integration tests of tandem-hyper, each server in-process on 127.0.0.1:0: the dev PKI generator, gRPC calls and reverse streams, the JSON-RPC gateway, the directory clients (against an in-process and a lying sd, and through a real forward proxy), two Hyper nodes and an sd together, and their metrics.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod certs_dev_pki;
mod dirclient_api;
mod dirclient_json;
mod forward_proxy;
mod gateway;
mod gateway_tls;
mod grpc_call;
mod grpc_compat;
mod grpc_faults;
mod grpc_nodes;
mod grpc_retry;
mod grpc_reverse;
mod h2_front;
mod lying_directory;
mod metrics;
mod reload;
mod two_nodes;

//! Tandem's control plane: settings, TLS identity, the signed service directory, its datastores,
//! the directory server (`sd`) and the `hyper` command line. See ARCHITECTURE.md for the code map.

pub mod broker;
pub mod certs;
pub mod cli;
pub mod control_service;
pub mod datastore;
pub mod dirclient;
pub mod directory;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod http;
pub mod hyper_server;
pub mod jsonrpc;
pub mod metrics;
pub mod p2p;
pub mod proxy;
pub mod sd;
pub mod sdclient;
pub mod serving;
pub mod settings;
pub mod telemetry;
pub mod tls;

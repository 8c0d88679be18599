//! The Hyper node: the message broker and its channels (JSON-RPC gateway, gRPC server and client,
//! reverse streams), brokered peer-to-peer connections, the directory client, the dev PKI and the
//! `hyper` command line.

pub mod broker;
pub mod certs;
pub mod cli;
pub mod dirclient;
pub mod grpc;
pub mod hyper_server;
pub mod p2p;
pub mod sdclient;

//! JSON-RPC 2.0 envelopes, error codes and the HTTP mapping shared by every JSON-RPC server
//! and client in Tandem.

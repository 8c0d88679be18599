//! Typed TLS settings (`tls:` blocks), as the original's `tls/forms.go` defines them.

use std::path::PathBuf;

/// A validated `tls:` block. Paths are absolute (resolved by the loader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trust anchors for peers (required, at least one file).
    pub ca_certificate_files: Vec<PathBuf>,
    /// Our own certificate chain (leaf first, intermediates after), PEM.
    pub certificate_file: Option<PathBuf>,
    /// Our private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against (clients); defaults to the dialed host.
    pub server_name: Option<String>,
    /// Servers: require and verify a client certificate (default true).
    pub verify_client: bool,
    /// Servers: ask for a client certificate without requiring one (default false).
    pub request_client_cert: bool,
    /// Clients: skip server verification (default false; dev only).
    pub insecure_skip_verify: bool,
}

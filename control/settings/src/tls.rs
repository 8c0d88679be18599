//! Typed TLS settings (`tls:` blocks), as the original's `tls/forms.go` defines them.

use std::fmt;
use std::path::PathBuf;

use super::convert::{abs_path, abs_paths};
use super::error::FieldIssues;

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

/// Raw `tls:` block, as written in settings files.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsSettings {
    #[serde(default)]
    ca_certificate_files: Vec<String>,
    certificate_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    #[serde(default = "yes")]
    verify_client: bool,
    #[serde(default)]
    request_client_cert: bool,
    #[serde(default)]
    insecure_skip_verify: bool,
}

fn yes() -> bool {
    true
}

impl TryFrom<RawTlsSettings> for TlsSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawTlsSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let ca_certificate_files = abs_paths(
            &raw.ca_certificate_files,
            "ca_certificate_files",
            true,
            &mut issues,
        );
        let certificate_file = raw
            .certificate_file
            .as_deref()
            .and_then(|p| abs_path(p, "certificate_file", &mut issues));
        let key_file = raw
            .key_file
            .as_deref()
            .and_then(|p| abs_path(p, "key_file", &mut issues));
        match (&raw.certificate_file, &raw.key_file) {
            (Some(_), None) => issues.push("key_file", "required when certificate_file is set"),
            (None, Some(_)) => issues.push("certificate_file", "required when key_file is set"),
            _ => {}
        }
        if raw.server_name.as_deref() == Some("") {
            issues.push(
                "server_name",
                "must not be empty (omit it to use the dialed host)",
            );
        }
        issues.into_result(Self {
            ca_certificate_files,
            certificate_file,
            key_file,
            server_name: raw.server_name,
            verify_client: raw.verify_client,
            request_client_cert: raw.request_client_cert,
            insecure_skip_verify: raw.insecure_skip_verify,
        })
    }
}

impl fmt::Display for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("-".to_owned(), |p| p.display().to_string())
        };
        let cas: Vec<String> = self
            .ca_certificate_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        write!(
            f,
            "cert={} key={} ca={cas:?}",
            show(&self.certificate_file),
            show(&self.key_file)
        )?;
        if let Some(name) = &self.server_name {
            write!(f, " server_name={name}")?;
        }
        write!(
            f,
            " verify_client={} request_client_cert={}",
            self.verify_client, self.request_client_cert
        )?;
        if self.insecure_skip_verify {
            f.write_str(" INSECURE_SKIP_VERIFY")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::convert::convert;

    fn tls(v: serde_json::Value) -> Result<TlsSettings, FieldIssues> {
        convert::<RawTlsSettings, TlsSettings>(&v)
    }

    #[test]
    fn defaults_match_the_original() {
        let t = tls(json!({"ca_certificate_files": ["/c/../root.crt"]})).unwrap();
        assert_eq!(t.ca_certificate_files, vec![PathBuf::from("/root.crt")]);
        assert!(t.verify_client);
        assert!(!t.request_client_cert);
        assert!(!t.insecure_skip_verify);
    }

    #[test]
    fn ca_list_is_required_and_typos_are_rejected() {
        let e = tls(json!({"ca_certificate_files": []})).unwrap_err();
        assert_eq!(e.0[0].0, "ca_certificate_files");
        let e = tls(json!({"ca_certificate_files": ["/r"], "validate_client": false})).unwrap_err();
        assert_eq!(e.0[0].0, "validate_client");
        assert!(e.0[0].1.contains("unknown key"), "{e:?}");
        let e = tls(json!({"ca_certificate_files": ["/r"], "certificate_file": "/c"})).unwrap_err();
        assert_eq!(e.0[0].0, "key_file");
    }
}

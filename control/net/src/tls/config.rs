//! `ServerConfig` / `ClientConfig` from [`TlsSettings`], mirroring the original's `tls/config.go`:
//! trust = the CA files, identity = certificate_file/key_file, client auth per `verify_client` /
//! `request_client_cert`, TLS 1.2 and 1.3.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::TlsError;
use super::insecure::NoServerVerification;
use super::pem::{load_certificates, load_private_key, load_roots};
use tandem_settings::tls::TlsSettings;

/// Both versions the original negotiated (Go's defaults: 1.2 minimum, 1.3 maximum).
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of every Tandem TLS config: *ring*, passed explicitly.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Our own chain and key, if configured; one without the other is a settings error.
fn identity(settings: &TlsSettings) -> Result<Option<Identity>, TlsError> {
    match (&settings.certificate_file, &settings.key_file) {
        (Some(cert), Some(key)) => Ok(Some((load_certificates(cert)?, load_private_key(key)?))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(TlsError::Settings(
            "certificate_file is set but key_file is not".into(),
        )),
        (None, Some(_)) => Err(TlsError::Settings(
            "key_file is set but certificate_file is not".into(),
        )),
    }
}

fn identity_context(settings: &TlsSettings) -> String {
    let show = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    format!(
        "certificate {} / key {}",
        show(&settings.certificate_file),
        show(&settings.key_file)
    )
}

fn versions_err(source: rustls::Error) -> TlsError {
    TlsError::Rustls {
        context: "protocol versions".into(),
        source,
    }
}

/// A server config: our certificate (required), client certificates required and verified against
/// the CA files when `verify_client`, else requested and verified only if presented when
/// `request_client_cert`, else not requested. `alpn` lists the protocols offered, in preference order.
pub fn server_config(
    settings: &TlsSettings,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let (certs, key) = identity(settings)?.ok_or_else(|| {
        TlsError::Settings("a TLS server needs certificate_file and key_file".into())
    })?;
    // Loaded even without client auth, as the original did: a broken CA file fails at start.
    let roots = Arc::new(load_roots(&settings.ca_certificate_files)?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(versions_err)?;
    let builder = if settings.verify_client || settings.request_client_cert {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
        let verifier = if settings.verify_client {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(verifier.build()?)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rustls {
            context: identity_context(settings),
            source,
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client config: servers verified against the CA files (or not at all with
/// `insecure_skip_verify`, which logs a warning), our certificate presented if configured.
pub fn client_config(
    settings: &TlsSettings,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let roots = load_roots(&settings.ca_certificate_files)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(versions_err)?;
    let builder = if settings.insecure_skip_verify {
        tracing::warn!(
            ca_certificate_files = ?settings.ca_certificate_files,
            "insecure_skip_verify is set: server certificates are NOT verified; \
             any peer can impersonate the server. Development only."
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerification::new(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match identity(settings)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|source| TlsError::Rustls {
                context: identity_context(settings),
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The name to verify the server against: `server_name` from the settings, else `fallback_host`
/// (the dialled host; `[v6]` brackets are removed). DNS names and IP addresses are accepted.
pub fn server_name(
    settings: &TlsSettings,
    fallback_host: &str,
) -> Result<ServerName<'static>, TlsError> {
    let name = settings.server_name.as_deref().unwrap_or(fallback_host);
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TlsSettings {
        TlsSettings {
            ca_certificate_files: vec![],
            certificate_file: None,
            key_file: None,
            server_name: None,
            verify_client: true,
            request_client_cert: false,
            insecure_skip_verify: false,
        }
    }

    #[test]
    fn server_name_prefers_the_setting_and_accepts_ips() {
        let mut s = settings();
        assert_eq!(server_name(&s, "hd-2").unwrap().to_str(), "hd-2");
        assert_eq!(server_name(&s, "[::1]").unwrap().to_str(), "::1");
        assert_eq!(server_name(&s, "127.0.0.1").unwrap().to_str(), "127.0.0.1");
        s.server_name = Some("sd-1".into());
        assert_eq!(server_name(&s, "localhost").unwrap().to_str(), "sd-1");
        s.server_name = Some("bad name!".into());
        assert_eq!(
            server_name(&s, "localhost").unwrap_err().kind(),
            "server_name"
        );
    }

    #[test]
    fn half_configured_identity_is_rejected() {
        let mut s = settings();
        s.certificate_file = Some("/x.crt".into());
        assert_eq!(identity(&s).unwrap_err().kind(), "settings");
        let mut s = settings();
        s.key_file = Some("/x.key".into());
        assert_eq!(identity(&s).unwrap_err().kind(), "settings");
        assert!(identity(&settings()).unwrap().is_none());
    }

    #[test]
    fn a_server_without_a_certificate_is_a_settings_error() {
        assert_eq!(
            server_config(&settings(), &[]).unwrap_err().kind(),
            "settings"
        );
    }
}

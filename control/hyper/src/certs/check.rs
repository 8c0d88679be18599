//! Deciding whether existing files can be reused: they parse, the keys match, they chain to the
//! existing root, they carry the names the plan asks for, and they do not expire soon.
//! A "no" is a reason string (logged), not an error: the caller regenerates.

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::files::read_bounded;
use super::issue::{self, Ca, SanKind};
use super::plan::{CertKind, OperatorSpec, PkiLayout, RENEW_BEFORE_DAYS};

/// Why an existing file cannot be reused.
pub(crate) type Reason = String;

/// The existing CA, validated as a unit.
pub(crate) struct ExistingCa {
    pub(crate) root_der: CertificateDer<'static>,
    pub(crate) intermediate: Ca,
}

/// Loads root + intermediate if both certificates and keys are present, consistent and fresh.
pub(crate) fn reusable_ca(layout: &PkiLayout) -> Result<ExistingCa, Reason> {
    let root_der = single_cert(&layout.root_cert())?;
    let root_key = read_p256(&layout.root_key())?.0;
    key_matches(&root_der, &root_key)?;
    fresh(&root_der)?;
    let inter_der = single_cert(&layout.intermediate_cert())?;
    let inter_key = read_p256(&layout.intermediate_key())?.0;
    let pkcs8 = inter_key
        .to_pkcs8_der()
        .map_err(|e| format!("intermediate key: {e}"))?;
    fresh(&inter_der)?;
    let intermediate = issue::load_ca("intermediate", inter_der.clone(), pkcs8.as_bytes())
        .map_err(|e| e.to_string())?;
    // A probe leaf signed with intermediate.key and verified through intermediate.crt up to
    // root.crt proves the intermediate key, the intermediate certificate and the root agree.
    let probe_op = OperatorSpec {
        name: "probe".into(),
        group: None,
    };
    let probe =
        issue::new_leaf(&probe_op, CertKind::Tls, &intermediate).map_err(|e| e.to_string())?;
    verify_chain(&probe.leaf_der, &[inter_der], &root_der, CertKind::Tls)
        .map_err(|e| format!("intermediate does not chain to root: {e}"))?;
    Ok(ExistingCa {
        root_der,
        intermediate,
    })
}

/// Returns the leaf DER of `<op><kind>.crt` if the pair can be kept under `ca`.
pub(crate) fn reusable_leaf(
    layout: &PkiLayout,
    op: &OperatorSpec,
    kind: CertKind,
    ca: &ExistingCa,
) -> Result<CertificateDer<'static>, Reason> {
    let cert_path = layout.cert(&op.name, kind);
    let chain = read_certs(&cert_path)?;
    let [leaf, rest @ ..] = chain.as_slice() else {
        return Err(format!("{}: no certificate", cert_path.display()));
    };
    if rest != [ca.intermediate.cert_der.clone()] {
        return Err(format!(
            "{}: not followed by exactly the current intermediate",
            cert_path.display()
        ));
    }
    let (key, sec1) = read_p256(&layout.key(&op.name, kind))?;
    if kind.is_signing() && !sec1 {
        return Err(format!("{}: signing key is not SEC1", op.name));
    }
    key_matches(leaf, &key)?;
    fresh(leaf)?;
    names_match(leaf, op, kind)?;
    verify_chain(leaf, rest, &ca.root_der, kind)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok(leaf.clone())
}

/// Parses every `CERTIFICATE` block of a PEM file.
pub(crate) fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, Reason> {
    let bytes = read_bounded(path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", path.display()))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn single_cert(path: &std::path::Path) -> Result<CertificateDer<'static>, Reason> {
    let mut certs = read_certs(path)?;
    match (certs.pop(), certs.is_empty()) {
        (Some(cert), true) => Ok(cert),
        _ => Err(format!(
            "{}: expected exactly one certificate",
            path.display()
        )),
    }
}

/// Reads a P-256 private key (PKCS#8 or SEC1); the flag says whether it was SEC1.
fn read_p256(path: &std::path::Path) -> Result<(p256::SecretKey, bool), Reason> {
    let bytes = read_bounded(path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", path.display()))?;
    let key =
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed = match &key {
        PrivateKeyDer::Pkcs8(k) => {
            p256::SecretKey::from_pkcs8_der(k.secret_pkcs8_der()).map(|k| (k, false))
        }
        PrivateKeyDer::Sec1(k) => p256::SecretKey::from_sec1_der(k.secret_sec1_der())
            .map(|k| (k, true))
            .map_err(|_| p256::pkcs8::Error::KeyMalformed),
        _ => return Err(format!("{}: not a P-256 key", path.display())),
    };
    parsed.map_err(|e| format!("{}: not a P-256 key: {e}", path.display()))
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, Reason> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| format!("unparseable certificate: {e}"))
}

fn key_matches(cert_der: &[u8], key: &p256::SecretKey) -> Result<(), Reason> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let cert = parse(cert_der)?;
    let point = key.public_key().to_encoded_point(false);
    if cert.public_key().subject_public_key.data.as_ref() != point.as_bytes() {
        return Err(format!("key does not match certificate {}", cert.subject()));
    }
    Ok(())
}

/// Valid now and for at least [`RENEW_BEFORE_DAYS`] more days.
fn fresh(cert_der: &[u8]) -> Result<(), Reason> {
    let cert = parse(cert_der)?;
    let now = chrono::Utc::now().timestamp();
    let validity = cert.validity();
    if validity.not_before.timestamp() > now
        || validity.not_after.timestamp() < now + RENEW_BEFORE_DAYS * 86_400
    {
        return Err(format!("{} is not valid long enough", cert.subject()));
    }
    Ok(())
}

/// CN equals the operator name and the SANs are exactly the ones the plan asks for, in order.
fn names_match(leaf_der: &[u8], op: &OperatorSpec, kind: CertKind) -> Result<(), Reason> {
    let cert = parse(leaf_der)?;
    let cn = tandem_net::tls::common_name(&cert);
    if cn != Some(op.name.as_str()) {
        return Err(format!("{}: CN {cn:?} is not the operator name", op.name));
    }
    let found: Vec<(SanKind, String)> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((SanKind::Dns, (*d).to_owned())),
                GeneralName::URI(u) => Some((SanKind::Uri, (*u).to_owned())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if found != issue::sans(op, kind) {
        return Err(format!(
            "{}{}: SANs differ from the plan",
            op.name,
            kind.suffix()
        ));
    }
    Ok(())
}

/// Verifies `leaf` up to `root` with webpki, for the usages the kind is meant for.
pub(crate) fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    root: &CertificateDer<'_>,
    kind: CertKind,
) -> Result<(), Reason> {
    let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| format!("root: {e}"))?;
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("leaf: {e}"))?;
    let usages = if kind.is_signing() {
        vec![webpki::KeyUsage::client_auth()]
    } else {
        vec![
            webpki::KeyUsage::server_auth(),
            webpki::KeyUsage::client_auth(),
        ]
    };
    for usage in usages {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            intermediates,
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map_err(|e| format!("chain verification failed: {e}"))?;
    }
    Ok(())
}

//! [`generate`]: reuse what is valid, issue what is missing, keep `002_certificates.json` in step.

use std::path::PathBuf;

use rustls_pki_types::CertificateDer;

use super::check::{self, ExistingCa};
use super::files::{PRIVATE_MODE, PUBLIC_MODE, ensure_dir, write_file};
use super::issue;
use super::plan::{CertKind, CertsPlan, OperatorSpec, PkiLayout};
use super::{CertsError, record};

/// The pinned fingerprints of one operator (lowercase hex SHA-256 of the leaf DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorFingerprints {
    /// Operator name.
    pub name: String,
    /// Fingerprint of `<op>-sign.crt`'s leaf (`key_usage: "signing"`).
    pub signing: String,
    /// Fingerprint of `<op>.crt`'s leaf (`key_usage: "encryption"`).
    pub encryption: String,
}

/// What [`generate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsReport {
    /// Whether a new root and intermediate were created (then every leaf is new too).
    pub ca_generated: bool,
    /// Certificate and key files written by this run.
    pub written: Vec<PathBuf>,
    /// Certificate files that were valid and kept.
    pub reused: Vec<PathBuf>,
    /// Path of `002_certificates.json`.
    pub directory_file: PathBuf,
    /// Whether `002_certificates.json` was (re)written.
    pub directory_file_written: bool,
    /// Pinned fingerprints, in plan order.
    pub fingerprints: Vec<OperatorFingerprints>,
}

/// Generates (or completes) the PKI described by `plan`.
///
/// Without `plan.force`, a valid existing CA is kept, and so is every operator certificate that
/// parses, matches its key, carries the planned names and chains to that CA; only what is missing
/// or invalid is issued, and `002_certificates.json` is rewritten only if it does not already pin
/// exactly the resulting certificates. A second run over a complete PKI writes nothing.
pub fn generate(plan: &CertsPlan) -> Result<CertsReport, CertsError> {
    plan.validate()?;
    let span = tracing::info_span!("certs.generate", certs_dir = %plan.certs_dir.display());
    let _guard = span.enter();
    ensure_dir(&plan.certs_dir)?;
    ensure_dir(&plan.directory_dir)?;
    let layout = plan.layout();
    let mut report = CertsReport {
        ca_generated: false,
        written: Vec::new(),
        reused: Vec::new(),
        directory_file: plan.directory_file(),
        directory_file_written: false,
        fingerprints: Vec::with_capacity(plan.operators.len()),
    };
    let existing = if plan.force {
        None
    } else {
        check::reusable_ca(&layout)
            .inspect_err(|reason| tracing::info!(%reason, "issuing a new CA"))
            .ok()
    };
    let (ca, reuse_leaves) = match existing {
        Some(ca) => {
            report.reused.push(layout.root_cert());
            report.reused.push(layout.intermediate_cert());
            (ca, true)
        }
        None => (new_ca(&layout, &mut report)?, false),
    };
    for op in &plan.operators {
        let fingerprints = operator(&layout, op, &ca, reuse_leaves, &mut report)?;
        report.fingerprints.push(fingerprints);
    }
    report.directory_file_written = record::sync(
        &report.directory_file,
        &report.fingerprints,
        chrono::Utc::now(),
    )?;
    tracing::info!(
        ca_generated = report.ca_generated,
        written = report.written.len(),
        reused = report.reused.len(),
        directory_file_written = report.directory_file_written,
        "certificates ready"
    );
    Ok(report)
}

fn new_ca(layout: &PkiLayout, report: &mut CertsReport) -> Result<ExistingCa, CertsError> {
    let root = issue::new_root()?;
    let intermediate = issue::new_intermediate(&root)?;
    for (key, key_pem, cert, cert_pem) in [
        (
            layout.root_key(),
            root.key_pem(),
            layout.root_cert(),
            &root.cert_pem,
        ),
        (
            layout.intermediate_key(),
            intermediate.key_pem(),
            layout.intermediate_cert(),
            &intermediate.cert_pem,
        ),
    ] {
        write_file(&key, key_pem.as_bytes(), PRIVATE_MODE)?;
        write_file(&cert, cert_pem.as_bytes(), PUBLIC_MODE)?;
        report.written.extend([key, cert]);
    }
    report.ca_generated = true;
    Ok(ExistingCa {
        root_der: root.cert_der,
        intermediate,
    })
}

/// Keeps or issues the four certificates of `op`; returns its pinned fingerprints.
fn operator(
    layout: &PkiLayout,
    op: &OperatorSpec,
    ca: &ExistingCa,
    reuse: bool,
    report: &mut CertsReport,
) -> Result<OperatorFingerprints, CertsError> {
    let mut fingerprints = OperatorFingerprints {
        name: op.name.clone(),
        signing: String::new(),
        encryption: String::new(),
    };
    for kind in CertKind::ALL {
        let kept = if reuse {
            check::reusable_leaf(layout, op, kind, ca)
                .inspect_err(|reason| tracing::info!(%reason, "issuing a new certificate"))
                .ok()
        } else {
            None
        };
        let leaf: CertificateDer<'static> = match kept {
            Some(leaf) => {
                report.reused.push(layout.cert(&op.name, kind));
                leaf
            }
            None => {
                let leaf = issue::new_leaf(op, kind, &ca.intermediate)?;
                let (key, cert) = (layout.key(&op.name, kind), layout.cert(&op.name, kind));
                write_file(&key, leaf.key_pem.as_bytes(), PRIVATE_MODE)?;
                write_file(&cert, leaf.chain_pem.as_bytes(), PUBLIC_MODE)?;
                report.written.extend([key, cert]);
                leaf.leaf_der
            }
        };
        match kind {
            CertKind::Tls => fingerprints.encryption = tandem_net::tls::fingerprint(&leaf),
            CertKind::Sign => fingerprints.signing = tandem_net::tls::fingerprint(&leaf),
            CertKind::TlsAlt | CertKind::SignAlt => {}
        }
    }
    Ok(fingerprints)
}

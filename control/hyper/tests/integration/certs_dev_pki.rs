//! The generated dev PKI: chains, extensions, key formats and permissions, the records file,
//! idempotence and selective regeneration.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tandem_hyper::certs::{CertKind, CertsPlan, DEV_OPERATORS, generate};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

fn dev_plan(dir: &Path) -> CertsPlan {
    CertsPlan::dev(dir.join("certs"), dir.join("directory"))
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Bytes and mtime of every file under `dir`, for idempotence checks.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            (
                p.clone(),
                (std::fs::read(&p).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

fn verify(leaf: &CertificateDer<'_>, chain: &[CertificateDer<'_>], root: &CertificateDer<'_>) {
    let anchor = webpki::anchor_from_trusted_cert(root).unwrap();
    let ee = webpki::EndEntityCert::try_from(leaf).unwrap();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            chain,
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .unwrap();
    }
}

#[test]
fn every_operator_certificate_chains_to_the_root_through_the_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dev_plan(dir.path());
    generate(&plan).unwrap();
    let layout = plan.layout();
    let root = certs(&layout.root_cert()).remove(0);
    let intermediate = certs(&layout.intermediate_cert()).remove(0);
    for op in DEV_OPERATORS {
        for kind in CertKind::ALL {
            let chain = certs(&layout.cert(op, kind));
            assert_eq!(chain.len(), 2, "{op}{}: leaf + intermediate", kind.suffix());
            assert_eq!(chain[1], intermediate);
            verify(&chain[0], &chain[1..], &root);
            // Without the intermediate the leaf must not verify: it is really in the path.
            let anchors = [webpki::anchor_from_trusted_cert(&root).unwrap()];
            let ee = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
            let alone = ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            );
            assert!(alone.is_err());
        }
        let tls = certs(&layout.cert(op, CertKind::Tls)).remove(0);
        let ee = webpki::EndEntityCert::try_from(&tls).unwrap();
        for name in [op.to_owned(), format!("foo.{op}.local")] {
            let name = ServerName::try_from(name).unwrap();
            ee.verify_is_valid_for_subject_name(&name).unwrap();
        }
    }
}

#[test]
fn ca_certificates_have_the_original_subjects_and_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dev_plan(dir.path());
    generate(&plan).unwrap();
    let root_der = certs(&plan.layout().root_cert()).remove(0);
    let (_, root) = X509Certificate::from_der(&root_der).unwrap();
    assert_eq!(
        root.subject().to_string(),
        "C=DE, ST=Berlin, L=Berlin, O=IRIS, OU=IT, CN=Testing-Development"
    );
    assert_eq!(root.subject(), root.issuer());
    assert!(root.is_ca());
    let inter_der = certs(&plan.layout().intermediate_cert()).remove(0);
    let (_, inter) = X509Certificate::from_der(&inter_der).unwrap();
    assert_eq!(inter.issuer(), root.subject());
    let bc = inter.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = inter.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature() && ku.value.crl_sign() && ku.value.key_cert_sign());
    let has = |cert: &X509Certificate<'_>, f: fn(&ParsedExtension<'_>) -> bool| {
        cert.extensions().iter().any(|e| f(e.parsed_extension()))
    };
    assert!(has(&inter, |e| matches!(
        e,
        ParsedExtension::SubjectKeyIdentifier(_)
    )));
    assert!(has(&inter, |e| matches!(
        e,
        ParsedExtension::AuthorityKeyIdentifier(_)
    )));
    let years = |c: &X509Certificate<'_>| {
        (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400 / 365
    };
    assert_eq!(years(&root), 10);
    let leaf_der = certs(&plan.layout().cert("hd-1", CertKind::Tls)).remove(0);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    assert_eq!(years(&leaf), 2);
}

#[test]
fn signing_certificates_carry_identity_uris_digital_signature_and_sec1_keys() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dev_plan(dir.path());
    generate(&plan).unwrap();
    for op in ["hd-1", "hd-2"] {
        let der = certs(&plan.layout().cert(op, CertKind::Sign)).remove(0);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect();
        let expected: Vec<String> = if op == "hd-1" {
            vec![
                "URI:iris-name://hd-1".into(),
                "URI:iris-group://sd-admin".into(),
                "DNS:hd-1".into(),
            ]
        } else {
            vec!["URI:iris-name://hd-2".into(), "DNS:hd-2".into()]
        };
        assert_eq!(sans, expected);
        let key = std::fs::read_to_string(plan.layout().key(op, CertKind::Sign)).unwrap();
        assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{key}");
        p256::SecretKey::from_sec1_pem(&key).unwrap();
    }
}

#[test]
fn keys_are_private_and_the_records_file_pins_the_generated_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dev_plan(dir.path());
    let report = generate(&plan).unwrap();
    for entry in std::fs::read_dir(&plan.certs_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
    for d in [&plan.certs_dir, &plan.directory_dir] {
        assert_eq!(
            std::fs::metadata(d).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plan.directory_file()).unwrap()).unwrap();
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), DEV_OPERATORS.len());
    for (record, op) in records.iter().zip(DEV_OPERATORS) {
        assert_eq!(record["name"], op);
        assert_eq!(record["section"], "certificates");
        let created = record["created_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
        let sign = certs(&plan.layout().cert(op, CertKind::Sign)).remove(0);
        let tls = certs(&plan.layout().cert(op, CertKind::Tls)).remove(0);
        assert_eq!(
            record["data"],
            serde_json::json!([
                {"fingerprint": sha256_hex(&sign), "key_usage": "signing"},
                {"fingerprint": sha256_hex(&tls), "key_usage": "encryption"},
            ])
        );
    }
    assert_eq!(report.fingerprints.len(), DEV_OPERATORS.len());
}

#[test]
fn alt_certificates_share_names_but_not_keys_or_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dev_plan(dir.path());
    generate(&plan).unwrap();
    let l = plan.layout();
    for (main, alt) in [
        (CertKind::Tls, CertKind::TlsAlt),
        (CertKind::Sign, CertKind::SignAlt),
    ] {
        let a = certs(&l.cert("hd-1", main)).remove(0);
        let b = certs(&l.cert("hd-1", alt)).remove(0);
        assert_ne!(a, b);
        let (_, ca) = X509Certificate::from_der(&a).unwrap();
        let (_, cb) = X509Certificate::from_der(&b).unwrap();
        assert_ne!(ca.public_key().raw, cb.public_key().raw);
        assert_eq!(ca.subject(), cb.subject());
        assert_ne!(
            std::fs::read(l.key("hd-1", main)).unwrap(),
            std::fs::read(l.key("hd-1", alt)).unwrap()
        );
    }
}

#[test]
fn a_second_run_changes_nothing_and_force_regenerates_everything() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dev_plan(dir.path());
    generate(&plan).unwrap();
    let before = (snapshot(&plan.certs_dir), snapshot(&plan.directory_dir));
    let again = generate(&plan).unwrap();
    assert!(again.written.is_empty(), "{:?}", again.written);
    assert!(!again.ca_generated && !again.directory_file_written);
    assert_eq!(
        (snapshot(&plan.certs_dir), snapshot(&plan.directory_dir)),
        before
    );

    let forced = generate(&plan.clone().force(true)).unwrap();
    assert!(forced.ca_generated && forced.directory_file_written);
    assert!(forced.reused.is_empty());
    let root_after = std::fs::read(plan.layout().root_cert()).unwrap();
    assert_ne!(root_after, before.0[&plan.layout().root_cert()].0);
}

#[test]
fn only_broken_or_missing_pieces_are_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let plan = CertsPlan::with_operators(
        dir.path().join("certs"),
        dir.path().join("directory"),
        &["hd-1", "hd-2"],
        &[("hd-1", "sd-admin")],
    );
    let first = generate(&plan).unwrap();
    let l = plan.layout();
    let hd1_tls = std::fs::read(l.cert("hd-1", CertKind::Tls)).unwrap();

    // A missing signing key: only that pair is reissued, and the records file follows.
    std::fs::remove_file(l.key("hd-2", CertKind::Sign)).unwrap();
    let second = generate(&plan).unwrap();
    assert_eq!(
        second.written,
        [
            l.key("hd-2", CertKind::Sign),
            l.cert("hd-2", CertKind::Sign)
        ]
    );
    assert!(second.directory_file_written);
    assert_ne!(
        first.fingerprints[1].signing,
        second.fingerprints[1].signing
    );
    assert_eq!(first.fingerprints[0], second.fingerprints[0]);
    assert_eq!(
        std::fs::read(l.cert("hd-1", CertKind::Tls)).unwrap(),
        hd1_tls
    );

    // A key that does not belong to its certificate is replaced too.
    std::fs::copy(
        l.key("hd-1", CertKind::TlsAlt),
        l.key("hd-1", CertKind::Tls),
    )
    .unwrap();
    let third = generate(&plan).unwrap();
    assert_eq!(
        third.written,
        [l.key("hd-1", CertKind::Tls), l.cert("hd-1", CertKind::Tls)]
    );

    // A deleted records file is rewritten without touching any certificate.
    std::fs::remove_file(plan.directory_file()).unwrap();
    let fourth = generate(&plan).unwrap();
    assert!(fourth.written.is_empty() && fourth.directory_file_written);

    // A changed group map reissues the affected signing certificates only.
    let regrouped = CertsPlan::with_operators(
        dir.path().join("certs"),
        dir.path().join("directory"),
        &["hd-1", "hd-2"],
        &[("hd-1", "sd-admin"), ("hd-2", "sd-admin")],
    );
    let fifth = generate(&regrouped).unwrap();
    assert_eq!(
        fifth.written,
        [
            l.key("hd-2", CertKind::Sign),
            l.cert("hd-2", CertKind::Sign),
            l.key("hd-2", CertKind::SignAlt),
            l.cert("hd-2", CertKind::SignAlt),
        ]
    );

    // A broken root means a new CA and therefore new leaves everywhere.
    std::fs::write(l.root_cert(), "garbage").unwrap();
    let sixth = generate(&regrouped).unwrap();
    assert!(sixth.ca_generated);
    assert_eq!(sixth.written.len(), 4 + 2 * 4 * 2);
}

//! `002_certificates.json`: one `certificates` record per operator pinning its signing and TLS
//! leaf fingerprints (SPEC §6.1), in the format of the original's JSON directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CertsError;
use super::files::{PUBLIC_MODE, read_bounded, write_file};
use super::generate::OperatorFingerprints;

#[derive(Debug, Serialize, Deserialize)]
struct RecordsFile {
    records: Vec<CertificatesRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CertificatesRecord {
    name: String,
    section: String,
    created_at: String,
    data: Vec<CertificateEntry>,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CertificateEntry {
    fingerprint: String,
    key_usage: String,
}

const SECTION: &str = "certificates";

fn entries(op: &OperatorFingerprints) -> Vec<CertificateEntry> {
    vec![
        CertificateEntry {
            fingerprint: op.signing.clone(),
            key_usage: "signing".into(),
        },
        CertificateEntry {
            fingerprint: op.encryption.clone(),
            key_usage: "encryption".into(),
        },
    ]
}

/// Whether `bytes` already pins exactly `expected` (names, order, fingerprints; `created_at` ignored).
fn matches(bytes: &[u8], expected: &[OperatorFingerprints]) -> bool {
    let Ok(file) = serde_json::from_slice::<RecordsFile>(bytes) else {
        return false;
    };
    file.records.len() == expected.len()
        && file.records.iter().zip(expected).all(|(record, op)| {
            record.name == op.name && record.section == SECTION && record.data == entries(op)
        })
}

/// Writes the records file unless it already matches; returns whether it was written.
/// `created_at` is `now` in RFC 3339 with seconds and offset, like `date --rfc-3339=seconds`.
pub(crate) fn sync(
    path: &Path,
    expected: &[OperatorFingerprints],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, CertsError> {
    if let Some(bytes) = read_bounded(path)?
        && matches(&bytes, expected)
    {
        return Ok(false);
    }
    let created_at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let file = RecordsFile {
        records: expected
            .iter()
            .map(|op| CertificatesRecord {
                name: op.name.clone(),
                section: SECTION.into(),
                created_at: created_at.clone(),
                data: entries(op),
            })
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|source| CertsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    json.push(b'\n');
    write_file(path, &json, PUBLIC_MODE)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<OperatorFingerprints> {
        vec![OperatorFingerprints {
            name: "hd-1".into(),
            signing: "aa".into(),
            encryption: "bb".into(),
        }]
    }

    #[test]
    fn written_file_has_the_original_shape_and_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("002_certificates.json");
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        assert!(sync(&path, &ops(), now).unwrap());
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let expected = serde_json::json!({"records": [{
            "name": "hd-1", "section": "certificates", "created_at": "2024-01-02T03:04:05+00:00",
            "data": [{"fingerprint": "aa", "key_usage": "signing"},
                     {"fingerprint": "bb", "key_usage": "encryption"}]}]});
        assert_eq!(value, expected);
        assert!(!sync(&path, &ops(), chrono::Utc::now()).unwrap());
    }

    #[test]
    fn a_stale_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("002_certificates.json");
        std::fs::write(&path, br#"{"records": []}"#).unwrap();
        assert!(sync(&path, &ops(), chrono::Utc::now()).unwrap());
        std::fs::write(&path, b"not json").unwrap();
        assert!(sync(&path, &ops(), chrono::Utc::now()).unwrap());
    }
}

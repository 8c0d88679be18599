//! What to generate: the operators, their groups, where the files go, and the validity periods.

use std::path::{Path, PathBuf};

use super::CertsError;

/// The operators `make certs` generated in the original (minus the out-of-scope QUIC ones, §7.4).
pub const DEV_OPERATORS: [&str; 10] = [
    "op-1",
    "op-2",
    "hd-1",
    "hd-2",
    "ls-1",
    "internal-server",
    "public-proxy-1.ga",
    "private-proxy-1.ga",
    "sd-1",
    "demo-app",
];

/// The dev group map: `hd-1` administers the service directory.
pub const DEV_GROUPS: [(&str, &str); 1] = [("hd-1", "sd-admin")];

/// Validity of the root and intermediate CA certificates, in days (10 years): long enough that a dev
/// checkout never has to think about it; the original used 1024 and 300 days.
pub const CA_VALIDITY_DAYS: i64 = 3650;

/// Validity of operator certificates, in days (~2 years; the original used 500 days). Leaves expire
/// before the CA so a re-run of `hyper certs` renews them under the same root.
pub const LEAF_VALIDITY_DAYS: i64 = 730;

/// An existing certificate that expires within this many days is regenerated instead of reused.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// Upper bound on the operators in one plan (count): the dev PKI has 10; this only stops a
/// runaway caller from filling the disk.
pub const MAX_OPERATORS: usize = 1024;

/// Longest operator name accepted, in bytes: a DNS name is at most 253 characters.
pub const MAX_OPERATOR_NAME_LEN: usize = 253;

/// One operator: its name (CN, DNS SAN, `iris-name://`) and optional group (`iris-group://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSpec {
    /// Operator name, e.g. `hd-1`.
    pub name: String,
    /// Group for the signing certificate, e.g. `sd-admin`.
    pub group: Option<String>,
}

/// Everything [`generate`](super::generate) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsPlan {
    /// Directory receiving `root.crt`, `<op>.key` and so on (created 0700).
    pub certs_dir: PathBuf,
    /// Directory receiving `002_certificates.json` (created 0700 if missing).
    pub directory_dir: PathBuf,
    /// Operators, in the order their records appear in `002_certificates.json`.
    pub operators: Vec<OperatorSpec>,
    /// Regenerate everything even if valid files exist (`hyper certs --force`).
    pub force: bool,
}

impl CertsPlan {
    /// The dev PKI of `make certs`: [`DEV_OPERATORS`] with [`DEV_GROUPS`].
    pub fn dev(certs_dir: impl Into<PathBuf>, directory_dir: impl Into<PathBuf>) -> Self {
        Self::with_operators(certs_dir, directory_dir, &DEV_OPERATORS, &DEV_GROUPS)
    }

    /// A plan for the given operators; `groups` maps operator name to group (others get none).
    pub fn with_operators(
        certs_dir: impl Into<PathBuf>,
        directory_dir: impl Into<PathBuf>,
        operators: &[&str],
        groups: &[(&str, &str)],
    ) -> Self {
        let operators = operators
            .iter()
            .map(|name| OperatorSpec {
                name: (*name).to_owned(),
                group: groups
                    .iter()
                    .find(|(op, _)| op == name)
                    .map(|(_, group)| (*group).to_owned()),
            })
            .collect();
        Self {
            certs_dir: certs_dir.into(),
            directory_dir: directory_dir.into(),
            operators,
            force: false,
        }
    }

    /// Sets [`CertsPlan::force`].
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The file layout in [`CertsPlan::certs_dir`].
    pub fn layout(&self) -> PkiLayout {
        PkiLayout::new(&self.certs_dir)
    }

    /// Path of the generated directory records file.
    pub fn directory_file(&self) -> PathBuf {
        self.directory_dir.join(DIRECTORY_FILE_NAME)
    }

    /// Rejects plans that would write outside `certs_dir` or produce unusable certificates.
    pub(crate) fn validate(&self) -> Result<(), CertsError> {
        if self.operators.is_empty() || self.operators.len() > MAX_OPERATORS {
            return Err(CertsError::Plan(format!(
                "between 1 and {MAX_OPERATORS} operators required, got {}",
                self.operators.len()
            )));
        }
        for (i, op) in self.operators.iter().enumerate() {
            check_name("operator", &op.name)?;
            if let Some(group) = &op.group {
                check_name("group", group)?;
            }
            if self.operators[..i].iter().any(|o| o.name == op.name) {
                return Err(CertsError::Plan(format!(
                    "operator {:?} listed twice",
                    op.name
                )));
            }
        }
        Ok(())
    }
}

/// A name goes into file names, DNS SANs and URIs: letters, digits, `-`, `.`, `_`; no leading dot.
fn check_name(what: &str, name: &str) -> Result<(), CertsError> {
    let charset_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if name.is_empty() || name.len() > MAX_OPERATOR_NAME_LEN || !charset_ok || name.starts_with('.')
    {
        return Err(CertsError::Plan(format!(
            "invalid {what} name {name:?} (1..={MAX_OPERATOR_NAME_LEN} of [A-Za-z0-9._-], no leading dot)"
        )));
    }
    Ok(())
}

/// File name of the generated directory records, as in the original.
pub const DIRECTORY_FILE_NAME: &str = "002_certificates.json";

/// The four certificates generated per operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// `<op>.crt/.key`: TLS ("encryption") certificate, pinned in the directory.
    Tls,
    /// `<op>-alt.crt/.key`: same names, other key, never in the directory (pinning tests).
    TlsAlt,
    /// `<op>-sign.crt/.key`: record-signing certificate (SEC1 key), pinned in the directory.
    Sign,
    /// `<op>-sign-alt.crt/.key`: alternative signing certificate (pinning tests).
    SignAlt,
}

impl CertKind {
    /// All kinds, in generation order.
    pub const ALL: [CertKind; 4] = [Self::Tls, Self::TlsAlt, Self::Sign, Self::SignAlt];

    /// File name suffix after the operator name.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Tls => "",
            Self::TlsAlt => "-alt",
            Self::Sign => "-sign",
            Self::SignAlt => "-sign-alt",
        }
    }

    /// Whether this is a signing certificate (digitalSignature, `iris-*` URI SANs, SEC1 key).
    pub fn is_signing(self) -> bool {
        matches!(self, Self::Sign | Self::SignAlt)
    }
}

/// Paths of the files in a certificates directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiLayout {
    dir: PathBuf,
}

impl PkiLayout {
    /// Layout rooted at `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The certificates directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `root.crt`: the trust anchor to list in `ca_certificate_files`.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root.crt")
    }

    /// `root.key` (PKCS#8).
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root.key")
    }

    /// `intermediate.crt`.
    pub fn intermediate_cert(&self) -> PathBuf {
        self.dir.join("intermediate.crt")
    }

    /// `intermediate.key` (PKCS#8).
    pub fn intermediate_key(&self) -> PathBuf {
        self.dir.join("intermediate.key")
    }

    /// `<op><suffix>.crt`: leaf followed by the intermediate, PEM.
    pub fn cert(&self, op: &str, kind: CertKind) -> PathBuf {
        self.dir.join(format!("{op}{}.crt", kind.suffix()))
    }

    /// `<op><suffix>.key`: PKCS#8 for TLS kinds, SEC1 `EC PRIVATE KEY` for signing kinds.
    pub fn key(&self, op: &str, kind: CertKind) -> PathBuf {
        self.dir.join(format!("{op}{}.key", kind.suffix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_plan_maps_only_hd1_to_a_group() {
        let plan = CertsPlan::dev("/c", "/d");
        assert_eq!(plan.operators.len(), DEV_OPERATORS.len());
        let grouped: Vec<_> = plan
            .operators
            .iter()
            .filter(|o| o.group.is_some())
            .collect();
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].name, "hd-1");
        assert_eq!(grouped[0].group.as_deref(), Some("sd-admin"));
        assert!(plan.validate().is_ok());
    }

    #[test]
    fn names_that_escape_the_directory_are_rejected() {
        for bad in ["", "../x", "a/b", ".hidden", "sp ace", "ü"] {
            let plan = CertsPlan::with_operators("/c", "/d", &[bad], &[]);
            assert!(plan.validate().is_err(), "{bad:?} accepted");
        }
        let dup = CertsPlan::with_operators("/c", "/d", &["a", "a"], &[]);
        assert!(dup.validate().is_err());
    }

    #[test]
    fn layout_uses_the_original_file_names() {
        let l = PkiLayout::new(Path::new("/c"));
        assert_eq!(l.cert("hd-1", CertKind::Tls), Path::new("/c/hd-1.crt"));
        assert_eq!(
            l.key("hd-1", CertKind::TlsAlt),
            Path::new("/c/hd-1-alt.key")
        );
        assert_eq!(
            l.cert("hd-1", CertKind::Sign),
            Path::new("/c/hd-1-sign.crt")
        );
        assert_eq!(
            l.key("hd-1", CertKind::SignAlt),
            Path::new("/c/hd-1-sign-alt.key")
        );
    }
}

//! Who may call the ControlService: operators named in the settings (a certificate name — CN or
//! DNS SAN — on the list; where the directory pins `encryption` certificates for that name, the
//! client's leaf must be one of them) and/or operators in a directory group (default
//! [`DEFAULT_ADMIN_GROUP`]) whose entry pins the client certificate (SPEC §6.4). The name rule is
//! [`allowed_name`], the one every door of Tandem uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use tandem_directory::identity::{NameRefusal, allowed_name, names_for_certificate};
use tandem_directory::source::{DirectorySource, Entries, SourceError};
use tandem_net::tls::certificate_names;

/// The directory group whose members administer a proxy unless configured otherwise.
pub const DEFAULT_ADMIN_GROUP: &str = "proxy-admin";

/// The admin check of the ControlService. Cheap to clone.
#[derive(Clone, Default)]
pub struct AdminPolicy {
    /// The allow-list; clones share it, so a reload ([`AdminPolicy::set_names`]) reaches every
    /// listener and call that holds the policy.
    names: Arc<ArcSwap<BTreeSet<String>>>,
    /// Pins for the names, and the group members.
    directory: Option<Arc<dyn DirectorySource>>,
    group: Option<String>,
}

impl fmt::Debug for AdminPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminPolicy")
            .field("names", &self.names)
            .field("directory", &self.directory.is_some())
            .field("group", &self.group)
            .finish()
    }
}

/// Why a caller is not an admin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Denied {
    /// The client presented no certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The directory could not be read (the caller may be an admin; try again).
    #[error("directory unavailable: {0}")]
    Directory(SourceError),
    /// None of the certificate's names is an allowed operator.
    #[error("certificate names {names:?} are not allowed to administer this proxy")]
    NotAdmin {
        /// The certificate's CN and DNS names (for the operator reading the log).
        names: Vec<String>,
    },
    /// An allowed name, but the directory pins other certificates for it.
    #[error("the certificate for admin {name:?} is not the one the directory pins")]
    NotPinned {
        /// The admin name.
        name: String,
    },
}

impl Denied {
    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Directory(_) => "directory",
            Self::NotAdmin { .. } => "not_admin",
            Self::NotPinned { .. } => "not_pinned",
        }
    }
}

impl AdminPolicy {
    /// Allows the operators in `names` (matched against the certificate's CN and DNS SANs; no
    /// pinning until a directory is added with [`AdminPolicy::with_pins`]).
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: Arc::new(ArcSwap::from_pointee(
                names.into_iter().map(Into::into).collect(),
            )),
            directory: None,
            group: None,
        }
    }

    /// Allows the operators in `group` of `directory` whose entry pins the client certificate.
    pub fn directory_group(directory: Arc<dyn DirectorySource>, group: impl Into<String>) -> Self {
        Self::default().with_directory_group(directory, group)
    }

    /// Adds the directory group check to a name allow-list (either admits); the directory's pins
    /// then also apply to the listed names.
    pub fn with_directory_group(
        mut self,
        directory: Arc<dyn DirectorySource>,
        group: impl Into<String>,
    ) -> Self {
        self.directory = Some(directory);
        self.group = Some(group.into());
        self
    }

    /// Checks the listed names against the pins of `directory`: a listed name whose entry pins
    /// `encryption` certificates admits only those leaves. While the directory cannot be read,
    /// callers are refused with [`Denied::Directory`] (fail closed).
    pub fn with_pins(mut self, directory: Arc<dyn DirectorySource>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Whether the policy admits nobody (no names and no group).
    pub fn is_closed(&self) -> bool {
        self.names.load().is_empty() && self.group.is_none()
    }

    /// Replaces the allow-list (a reload of `control.admins`) for every clone of this policy;
    /// calls already admitted keep running.
    pub fn set_names<I, S>(&self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names
            .store(Arc::new(names.into_iter().map(Into::into).collect()));
    }

    /// The admin name the certificate `leaf_der` maps to, or why it does not.
    pub async fn authorize(&self, leaf_der: Option<&[u8]>) -> Result<String, Denied> {
        let leaf = leaf_der.ok_or(Denied::NoCertificate)?;
        let entries: Entries = match &self.directory {
            Some(directory) => directory.entries().await.map_err(Denied::Directory)?,
            None => Arc::new(BTreeMap::new()),
        };
        let names = self.names.load();
        let listed = match allowed_name(leaf, |n| names.contains(n), &entries) {
            Ok(name) => return Ok(name),
            Err(refusal) => refusal,
        };
        if let Some(group) = &self.group {
            // A certificate that does not parse has no names (and is refused below).
            let bound = names_for_certificate(leaf, &entries).unwrap_or_default();
            if let Some(name) = bound.into_iter().find(|n| {
                entries
                    .get(n)
                    .is_some_and(|e| e.groups.iter().any(|g| g == group))
            }) {
                return Ok(name);
            }
        }
        Err(match listed {
            NameRefusal::NotPinned { name } => Denied::NotPinned { name },
            NameRefusal::NotListed { .. } => Denied::NotAdmin {
                names: certificate_names(leaf),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(names: &[&str]) -> Vec<u8> {
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[tokio::test]
    async fn allow_list_matches_any_dns_name() {
        let policy = AdminPolicy::names(["ops-1"]);
        assert_eq!(
            policy.authorize(Some(&leaf(&["x", "ops-1"]))).await,
            Ok("ops-1".into())
        );
        let denied = policy.authorize(Some(&leaf(&["hd-2"]))).await.unwrap_err();
        assert_eq!(denied.kind(), "not_admin");
        assert_eq!(
            policy.authorize(None).await.unwrap_err(),
            Denied::NoCertificate
        );
    }

    #[tokio::test]
    async fn a_closed_policy_admits_nobody() {
        let policy = AdminPolicy::default();
        assert!(policy.is_closed());
        assert_eq!(
            policy
                .authorize(Some(&leaf(&["hd-1"])))
                .await
                .unwrap_err()
                .kind(),
            "not_admin"
        );
    }
}

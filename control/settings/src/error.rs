//! The one error type of the settings boundary: every problem names the file, the key and the reason.

use std::fmt;
use std::path::PathBuf;

/// One problem found in the settings: where it is (file and dotted key) and why it is a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsIssue {
    /// The settings file that last set the key (or its closest parent key); `None` when no file did
    /// (for example a required key that no file sets at all).
    pub file: Option<PathBuf>,
    /// Dotted key path, lists indexed: `channels[2].settings.tls.certificate_file`. Empty for the
    /// whole file.
    pub key: String,
    /// What is wrong, for a human.
    pub reason: String,
}

impl fmt::Display for SettingsIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: ", file.display())?,
            None => f.write_str("(no file): ")?,
        }
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

/// Why settings could not be loaded or converted.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings environment variable is unset or holds no path.
    #[error("environment variable {var} is not set or lists no settings path")]
    NoPaths {
        /// The variable's name, e.g. `HYPER_SETTINGS`.
        var: String,
    },
    /// A settings file or directory could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        /// The path that failed.
        file: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be loaded: syntax, a bound, `$include`, `$ref` or a variable.
    #[error("{0}")]
    Load(SettingsIssue),
    /// The merged settings do not convert into typed settings; every issue found is listed.
    #[error("{}", Issues(.0))]
    Invalid(Vec<SettingsIssue>),
}

impl SettingsError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoPaths { .. } => "no_paths",
            Self::Io { .. } => "io",
            Self::Load(_) => "load",
            Self::Invalid(_) => "invalid",
        }
    }

    /// The issues this error carries (`Load` has one, `Invalid` one or more, the others none).
    pub fn issues(&self) -> &[SettingsIssue] {
        match self {
            Self::Load(issue) => std::slice::from_ref(issue),
            Self::Invalid(issues) => issues,
            Self::NoPaths { .. } | Self::Io { .. } => &[],
        }
    }

    pub(crate) fn load(
        file: Option<PathBuf>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Load(SettingsIssue {
            file,
            key: key.into(),
            reason: reason.into(),
        })
    }
}

struct Issues<'a>(&'a [SettingsIssue]);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} settings issue(s)", self.0.len())?;
        for issue in self.0 {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// Issues found while converting one `Raw*` value, with keys relative to that value. The caller
/// prefixes the keys and attaches the files (see `convert::Ctx`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldIssues(pub Vec<(String, String)>);

impl FieldIssues {
    /// Records that `key` (relative) is wrong because of `reason`.
    pub fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push((key.into(), reason.into()));
    }

    /// Adds `inner`'s issues under `prefix` (a relative key of the inner value).
    pub fn nest(&mut self, prefix: &str, inner: FieldIssues) {
        for (key, reason) in inner.0 {
            self.0.push((join_key(prefix, &key), reason));
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no issue was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldIssues> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// Joins a key path and a child path: `a` + `b` → `a.b`, `a` + `[2].b` → `a[2].b`, `` + `b` → `b`.
pub fn join_key(prefix: &str, child: &str) -> String {
    if prefix.is_empty() {
        child.to_owned()
    } else if child.is_empty() {
        prefix.to_owned()
    } else if child.starts_with('[') {
        format!("{prefix}{child}")
    } else {
        format!("{prefix}.{child}")
    }
}

/// The key path of list element `index` under `prefix`.
pub fn index_key(prefix: &str, index: usize) -> String {
    format!("{prefix}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_like_the_issue_reports_show_them() {
        assert_eq!(join_key("", "a"), "a");
        assert_eq!(join_key("a", "b"), "a.b");
        assert_eq!(join_key("a", "[2].b"), "a[2].b");
        assert_eq!(
            join_key(&index_key("channels", 2), "settings"),
            "channels[2].settings"
        );
    }

    #[test]
    fn invalid_lists_every_issue() {
        let err = SettingsError::Invalid(vec![
            SettingsIssue {
                file: Some("/a.yml".into()),
                key: "x".into(),
                reason: "bad".into(),
            },
            SettingsIssue {
                file: None,
                key: "y".into(),
                reason: "missing".into(),
            },
        ]);
        let text = err.to_string();
        assert!(text.contains("/a.yml: x: bad"), "{text}");
        assert!(text.contains("(no file): y: missing"), "{text}");
        assert_eq!(err.kind(), "invalid");
        assert_eq!(err.issues().len(), 2);
    }
}

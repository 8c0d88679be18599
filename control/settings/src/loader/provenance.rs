//! Which file set which key: the map that lets every later error name its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// For every key path that a file set while merging, the file that set it last.
///
/// Only the root of each subtree a file inserted or replaced is recorded; a deeper key is
/// attributed by walking up to its closest recorded ancestor ([`Provenance::file_for`]). The map
/// holds at most one entry per inserted node, so it is bounded by the loaded files' size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    files: Vec<PathBuf>,
    keys: BTreeMap<String, usize>,
}

impl Provenance {
    /// Every top-level settings file loaded, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The file that last set `key` or its closest ancestor, if any.
    pub fn file_for(&self, key: &str) -> Option<&Path> {
        let mut key = key;
        loop {
            if let Some(index) = self.keys.get(key) {
                return self.files.get(*index).map(PathBuf::as_path);
            }
            if key.is_empty() {
                return None;
            }
            key = parent_key(key);
        }
    }

    /// Registers a file and returns its index for [`Provenance::set`].
    pub(crate) fn add_file(&mut self, file: &Path) -> usize {
        self.files.push(file.to_path_buf());
        self.files.len() - 1
    }

    /// Records that file `index` set `key` (the whole subtree below it).
    pub(crate) fn set(&mut self, key: &str, index: usize) {
        self.keys.insert(key.to_owned(), index);
    }

    /// Forgets every record below `key` (not `key` itself): the subtree was replaced.
    pub(crate) fn clear_below(&mut self, key: &str) {
        let below: Vec<String> = self
            .keys
            .range(key.to_owned()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(key))
            .filter(|k| is_below(k, key))
            .cloned()
            .collect();
        for k in below {
            self.keys.remove(&k);
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent_key(key: &str) -> &str {
    match key.rfind(['.', '[']) {
        Some(pos) => &key[..pos],
        None => "",
    }
}

fn is_below(candidate: &str, key: &str) -> bool {
    if key.is_empty() {
        return !candidate.is_empty();
    }
    candidate
        .strip_prefix(key)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeper_keys_take_the_closest_recorded_ancestor() {
        let mut p = Provenance::default();
        let a = p.add_file(Path::new("/a.yml"));
        let b = p.add_file(Path::new("/b.yml"));
        p.set("channels", a);
        p.set("channels[2]", b);
        assert_eq!(
            p.file_for("channels[2].settings.tls.key_file"),
            Some(Path::new("/b.yml"))
        );
        assert_eq!(p.file_for("channels[1].name"), Some(Path::new("/a.yml")));
        assert_eq!(p.file_for("name"), None);
    }

    #[test]
    fn clearing_below_keeps_siblings_with_a_common_prefix() {
        let mut p = Provenance::default();
        let a = p.add_file(Path::new("/a.yml"));
        p.set("chan", a);
        p.set("chan[0]", a);
        p.set("chan.x", a);
        p.set("channels", a);
        p.clear_below("chan");
        assert_eq!(p.keys.keys().collect::<Vec<_>>(), vec!["chan", "channels"]);
    }
}

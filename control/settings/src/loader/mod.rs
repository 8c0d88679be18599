//! The settings loader: a colon-separated list of files and directories, each file expanded
//! (`$include`, `$ref`, `vars` and interpolation) and deep-merged, remembering which file set which
//! key. The format is the original Hyper's (go-helpers `settings`), so original role directories load.
//!
//! Processing order per top-level file: read (bounded) and parse (YAML, or JSON for `.json`) →
//! `$include` (recursively, bounded depth, cycles rejected) → `$ref` → `vars` and interpolation
//! (the including file's `$DIR`/`$PATH` and variables apply to included content too) → merge.
//!
//! The core touches the outside world only through [`Source`] and an environment lookup, so tests
//! drive it from temporary directories and maps without changing the process environment.

mod include;
mod merge;
mod provenance;
mod source;
mod vars;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use provenance::Provenance;
pub use source::{FsSource, Source};

use crate::error::SettingsError;
use crate::paths;

/// Largest settings file read, in bytes (1 MiB). Real role files are a few KiB; the bound keeps a
/// mistaken path (a log, a device) from being read into memory whole.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Most files read for one load, top-level and included together. Role directories hold a handful;
/// 256 leaves room for generated fragments while bounding the work a cycle of directories can cause.
pub const MAX_FILES: usize = 256;
/// Deepest `$include` nesting (a file including a file ... counts each level). Real settings nest
/// one or two levels; 8 keeps error chains readable.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Longest chain of `$ref`s followed to resolve one value (a ref to a ref ...); also what stops a
/// ref cycle.
pub const MAX_REF_DEPTH: usize = 16;

/// Looks up an environment variable; injected so that tests need no process-global state.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads settings from `source` with variables from `env`.
pub struct Loader<'a> {
    source: &'a dyn Source,
    env: EnvLookup<'a>,
}

impl Default for Loader<'static> {
    fn default() -> Self {
        Self {
            source: &FsSource,
            env: &process_env,
        }
    }
}

impl<'a> Loader<'a> {
    /// A loader over `source` that resolves `env` variables through `env`.
    pub fn new(source: &'a dyn Source, env: EnvLookup<'a>) -> Self {
        Self { source, env }
    }

    /// The file system with variables looked up through `env` (tests, embedders).
    pub fn with_env(env: EnvLookup<'a>) -> Self {
        Self {
            source: &FsSource,
            env,
        }
    }

    /// Loads and merges `paths` (files or directories) in order.
    pub fn load_paths(&self, paths: &[PathBuf]) -> Result<(Value, Provenance), SettingsError> {
        let mut files = Vec::new();
        for path in paths {
            let path = paths::absolute(path).map_err(|source| SettingsError::Io {
                file: path.clone(),
                source,
            })?;
            let is_dir = self
                .source
                .is_dir(&path)
                .map_err(|source| SettingsError::Io {
                    file: path.clone(),
                    source,
                })?;
            if is_dir {
                files.extend(self.settings_files_in(&path)?);
            } else {
                files.push(path);
            }
        }
        let mut budget = FileBudget::default();
        let mut merged = Map::new();
        let mut prov = Provenance::default();
        for file in files {
            let doc = self.process_file(&file, &mut budget)?;
            let index = prov.add_file(&file);
            merge::merge_map(&mut merged, doc, "", index, &mut prov);
            tracing::debug!(file = %file.display(), "settings file loaded");
        }
        Ok((Value::Object(merged), prov))
    }

    /// Loads the paths listed (colon-separated) in environment variable `var`.
    pub fn load_from_env(&self, var: &str) -> Result<(Value, Provenance), SettingsError> {
        let value = (self.env)(var).unwrap_or_default();
        let paths = split_paths(&value);
        if paths.is_empty() {
            return Err(SettingsError::NoPaths {
                var: var.to_owned(),
            });
        }
        self.load_paths(&paths)
    }

    fn settings_files_in(&self, dir: &Path) -> Result<Vec<PathBuf>, SettingsError> {
        let mut files: Vec<PathBuf> = self
            .source
            .list_files(dir)
            .map_err(|source| SettingsError::Io {
                file: dir.to_path_buf(),
                source,
            })?
            .into_iter()
            .filter(|f| is_settings_file(f))
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        Ok(files)
    }

    /// One top-level file, expanded: includes, refs, vars and interpolation.
    fn process_file(
        &self,
        file: &Path,
        budget: &mut FileBudget,
    ) -> Result<Map<String, Value>, SettingsError> {
        let doc = self.read_document(file, budget)?;
        let Value::Object(_) = doc else {
            return Err(SettingsError::load(
                Some(file.into()),
                "",
                "a settings file must hold a map",
            ));
        };
        let mut stack = vec![file.to_path_buf()];
        let doc = include::expand(self, doc, file, "", &mut stack, budget)?;
        let doc = include::resolve_refs(&doc, &doc, file, "", 0)?;
        let Value::Object(map) = doc else {
            return Err(SettingsError::load(
                Some(file.into()),
                "",
                "a settings file must hold a map",
            ));
        };
        vars::apply(map, file, self.env)
    }

    /// Reads and parses one file (top-level or included) within the bounds.
    fn read_document(&self, file: &Path, budget: &mut FileBudget) -> Result<Value, SettingsError> {
        budget.files += 1;
        if budget.files > MAX_FILES {
            return Err(SettingsError::load(
                Some(file.into()),
                "",
                format!("more than {MAX_FILES} settings files"),
            ));
        }
        let bytes = self
            .source
            .read(file, MAX_FILE_BYTES)
            .map_err(|source| SettingsError::Io {
                file: file.to_path_buf(),
                source,
            })?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(SettingsError::load(
                Some(file.into()),
                "",
                format!("file is larger than the limit of {MAX_FILE_BYTES} bytes"),
            ));
        }
        let parsed = if file.extension().is_some_and(|e| e == "json") {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string())
        } else {
            serde_yaml::from_slice::<Value>(&bytes).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(Value::Null) => Ok(Value::Object(Map::new())),
            Ok(value) => Ok(value),
            Err(reason) => Err(SettingsError::load(
                Some(file.into()),
                "",
                format!("cannot parse: {reason}"),
            )),
        }
    }
}

/// Counts files read during one load against [`MAX_FILES`].
#[derive(Debug, Default)]
struct FileBudget {
    files: usize,
}

/// `\.(yml|yaml|json)$`.
fn is_settings_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "yml" || e == "yaml" || e == "json")
}

/// Splits a colon-separated path list, dropping empty parts.
pub fn split_paths(value: &str) -> Vec<PathBuf> {
    value
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Loads the settings named by environment variable `var` from the file system, with variables
/// from the process environment.
pub fn load_from_env(var: &str) -> Result<(Value, Provenance), SettingsError> {
    Loader::default().load_from_env(var)
}

/// Loads and merges `paths` from the file system, with variables from the process environment.
pub fn load_paths(paths: &[PathBuf]) -> Result<(Value, Provenance), SettingsError> {
    Loader::default().load_paths(paths)
}

//! Every complete settings example in docs/operating.md (fenced as `yaml sd`, `yaml hyper` or
//! `yaml proxy`) loads through the real settings types, so the operator's guide cannot drift.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use tandem_proxy::settings::ProxySettings;
use tandem_settings::{HyperSettings, SdSettings};

/// The fenced blocks of `markdown` whose info string is `yaml <kind>`, as (kind, text).
fn examples(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                if let Some(kind) = info.strip_prefix("yaml ") {
                    current = Some((kind.trim().to_owned(), String::new()));
                } else if !info.is_empty() {
                    current = Some((String::new(), String::new()));
                }
            }
            (Some(_), Some(_)) => {
                let (kind, text) = current.take().unwrap();
                if !kind.is_empty() {
                    out.push((kind, text));
                }
            }
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn write(dir: &Path, i: usize, text: &str) -> PathBuf {
    let role = dir.join(format!("example-{i}"));
    std::fs::create_dir_all(&role).unwrap();
    std::fs::write(role.join("001_default.yml"), text).unwrap();
    role
}

#[test]
fn every_documented_example_loads() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operating.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let blocks = examples(&doc);
    let kinds: Vec<&str> = blocks.iter().map(|(k, _)| k.as_str()).collect();
    for kind in ["sd", "hyper", "proxy"] {
        assert!(
            kinds.contains(&kind),
            "docs/operating.md has no `yaml {kind}` example"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, (kind, text)) in blocks.iter().enumerate() {
        let role = write(dir.path(), i, text);
        let result = match kind.as_str() {
            "sd" => SdSettings::load(&[role]).map(|_| ()),
            "hyper" => HyperSettings::load(&[role]).map(|_| ()),
            "proxy" => ProxySettings::load(&[role]).map(|_| ()),
            other => panic!("unknown example kind {other:?}"),
        };
        if let Err(e) = result {
            panic!(
                "the `yaml {kind}` example #{i} in docs/operating.md does not load:\n{e}\n---\n{text}"
            );
        }
    }
}

#[test]
fn a_broken_example_would_be_caught() {
    let dir = tempfile::tempdir().unwrap();
    let role = write(
        dir.path(),
        0,
        "jsonrpc_server:\n  bind_address: \"0.0.0.0:1\"\n  tls_typo: {}\n",
    );
    assert!(SdSettings::load(&[role]).is_err());
    let blocks = examples(
        "text\n```yaml sd\na: 1\n```\n```rust\nfn x() {}\n```\n```yaml hyper\nb: 2\n```\n",
    );
    assert_eq!(
        blocks,
        vec![
            ("sd".into(), "a: 1\n".into()),
            ("hyper".into(), "b: 2\n".into())
        ]
    );
}

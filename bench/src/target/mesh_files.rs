//! Files and commands around a [`super::mesh::Mesh`]: its port block, copied roles, the directory
//! content with the `async-respond` method, and one-shot commands.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::mesh::{APP_METHOD, PORT_VARS};

/// One block of free ports below the kernel's ephemeral range (20000..32000), so that no client
/// connection takes one between our choice and the child's bind.
pub(super) fn free_ports() -> anyhow::Result<BTreeMap<&'static str, u16>> {
    const FIRST: u16 = 20_000;
    const BLOCKS: u16 = 1_000;
    let width = PORT_VARS.len() as u16;
    let start = ((std::process::id() + 500) % u32::from(BLOCKS)) as u16;
    for i in 0..BLOCKS {
        let base = FIRST + ((start + i) % BLOCKS) * width;
        let ports: Vec<u16> = (base..base + width).collect();
        if ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return Ok(PORT_VARS.iter().copied().zip(ports).collect());
        }
    }
    bail!("no block of {width} free ports in {FIRST}..")
}

pub(super) fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The directory content with [`APP_METHOD`] added to hd-2's `internals` service (callable by
/// the `health-departments` group, hd-1's).
pub(super) fn with_app_method(text: &str) -> anyhow::Result<String> {
    let mut doc: serde_json::Value = serde_json::from_str(text)?;
    let records = doc["records"].as_array_mut().context("no records")?;
    let services = records
        .iter_mut()
        .find(|r| r["name"] == "hd-2" && r["section"] == "services")
        .and_then(|r| r["data"].as_array_mut())
        .context("hd-2 has no services record")?;
    let internals = services
        .iter_mut()
        .find(|s| s["name"] == "internals")
        .and_then(|s| s["methods"].as_array_mut())
        .context("hd-2 has no internals service")?;
    internals.push(serde_json::json!({"name": APP_METHOD, "permissions": []}));
    Ok(serde_json::to_string_pretty(&doc)?)
}

pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs a command to completion; its stderr in the error when it fails.
pub(super) fn run(bin: &Path, args: &[&str], env: &[(String, String)]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::mesh::default_repo;

    #[test]
    fn the_app_method_lands_in_hd2_internals_only() {
        let text = std::fs::read_to_string(
            default_repo().join("settings/dev/directory/direct/001_default.json"),
        )
        .unwrap();
        let out: serde_json::Value =
            serde_json::from_str(&with_app_method(&text).unwrap()).unwrap();
        let methods = |op: &str| -> Vec<String> {
            out["records"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["name"] == op && r["section"] == "services")
                .flat_map(|r| r["data"].as_array().unwrap().clone())
                .filter(|s| s["name"] == "internals")
                .flat_map(|s| s["methods"].as_array().unwrap().clone())
                .map(|m| m["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(methods("hd-2").contains(&APP_METHOD.to_owned()));
        assert!(!methods("hd-1").contains(&APP_METHOD.to_owned()));
    }
}

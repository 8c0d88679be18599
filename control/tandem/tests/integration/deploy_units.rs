//! The systemd units in deploy/systemd pass `systemd-analyze verify` (when the tool is present; the
//! test fails loudly if it is missing on a systemd machine, and says so where systemd is absent).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn systemd_analyze() -> Option<&'static str> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Copies a unit with its ExecStart paths pointing at the binaries cargo built for this test.
fn instantiate(unit: &str, instance_name: &str, dir: &Path) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    let text = std::fs::read_to_string(repo.join("deploy/systemd").join(unit)).unwrap();
    let bins = Path::new(env!("CARGO_BIN_EXE_sd")).parent().unwrap();
    let text = text.replace("/usr/local/bin/", &format!("{}/", bins.display()));
    let path = dir.join(instance_name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn units_verify() {
    let Some(analyze) = systemd_analyze() else {
        assert!(
            !Path::new("/run/systemd/system").exists(),
            "systemd runs here but systemd-analyze is missing"
        );
        eprintln!(
            "systemd-analyze is not installed: unit verification not possible on this machine"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let units = [
        instantiate("tandem-sd.service", "tandem-sd.service", dir.path()),
        instantiate(
            "tandem-hyper@.service",
            "tandem-hyper@hd-1.service",
            dir.path(),
        ),
        instantiate(
            "tandem-proxy@.service",
            "tandem-proxy@public.service",
            dir.path(),
        ),
    ];
    let out = Command::new(analyze)
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and unparsable values and only warns: any output is a failure.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! `check-settings` passes on every dev and test role with the binary that role is for, and fails
//! with file, key and reason on broken settings. It reads every certificate, key and CA file the
//! settings name (the preparation a reload runs), so the roles are checked in a copy of
//! `settings/` with the PKI `hyper certs` makes (the repository holds no keys).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SD: &str = env!("CARGO_BIN_EXE_sd");
const HYPER: &str = env!("CARGO_BIN_EXE_hyper");
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

fn settings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../settings")
}

/// `settings/dev` and `settings/test` copied to a temporary directory, each with its PKI.
fn settings_with_certs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["dev", "test"] {
        let dir = tmp.path().join(kind);
        tandem_testkit::process::copy_dir(&settings_dir().join(kind), &dir);
        let out = Command::new(HYPER)
            .arg("certs")
            .arg("--certs-dir")
            .arg(dir.join("certs"))
            .arg("--directory-dir")
            .arg(dir.join("directory"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hyper certs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tmp
}

/// The binary and settings variable a role directory is for.
fn binary_for(role: &str) -> (&'static str, &'static str) {
    if role.starts_with("sd-") {
        (SD, "SD_SETTINGS")
    } else if role == "public-proxy-1" || role == "private-proxy-1" {
        (PROXY, "PROXY_SETTINGS")
    } else {
        (HYPER, "HYPER_SETTINGS")
    }
}

fn check(bin: &str, var: &str, dir: &Path) -> std::process::Output {
    Command::new(bin)
        .arg("check-settings")
        .env(var, dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn every_dev_and_test_role_passes() {
    let settings = settings_with_certs();
    let mut checked = Vec::new();
    for kind in ["dev", "test"] {
        let roles = settings.path().join(kind).join("roles");
        for entry in std::fs::read_dir(&roles).unwrap() {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_dir() {
                continue;
            }
            let role = entry.file_name().to_string_lossy().to_string();
            let (bin, var) = binary_for(&role);
            let out = check(bin, var, &entry.path());
            assert!(
                out.status.success(),
                "{kind}/{role} with {bin}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !out.stdout.is_empty(),
                "{kind}/{role}: check-settings printed nothing"
            );
            checked.push(format!("{kind}/{role}"));
        }
    }
    for must in [
        "dev/sd-1",
        "dev/hd-1",
        "dev/hd-2",
        "dev/public-proxy-1",
        "dev/private-proxy-1",
        "test/sd-1",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} was not checked: {checked:?}"
        );
    }
}

#[test]
fn secrets_are_masked() {
    let settings = settings_with_certs();
    let out = check(
        SD,
        "SD_SETTINGS",
        &settings.path().join("dev/roles/sd-1-redis"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("password"), "{text}");
    // Beside the copied roles, so its certificate paths (`/$DIR/../../certs`) resolve.
    let role = settings.path().join("dev/roles/secret");
    std::fs::create_dir_all(&role).unwrap();
    let original =
        std::fs::read_to_string(settings_dir().join("dev/roles/sd-1-redis/001_default.yml"))
            .unwrap();
    let with_secret = original.replace("password: \"\"", "password: \"hunter2-secret\"");
    assert_ne!(
        original, with_secret,
        "the Redis role names a password to replace"
    );
    std::fs::write(role.join("001_default.yml"), with_secret).unwrap();
    let out = check(SD, "SD_SETTINGS", &role);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("hunter2-secret"),
        "the password is printed: {text}"
    );
}

#[test]
fn broken_settings_name_file_key_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            SD,
            "SD_SETTINGS",
            "jsonrpc_server:\n  bind_address: \"localhost:99999\"\n",
            "bind_address",
        ),
        (
            HYPER,
            "HYPER_SETTINGS",
            "name: hd-9\nchannels: []\ndirectory: {type: json, settings: {path: \"/tmp\"}}\nbogus_key: 1\n",
            "bogus_key",
        ),
        (
            PROXY,
            "PROXY_SETTINGS",
            "public:\n  name: p\n  accept_timeout: -1\n",
            "accept_timeout",
        ),
    ];
    for (i, (bin, var, yaml, key)) in cases.into_iter().enumerate() {
        let role = tmp.path().join(format!("case-{i}"));
        std::fs::create_dir_all(&role).unwrap();
        std::fs::write(role.join("001_broken.yml"), yaml).unwrap();
        let out = check(bin, var, &role);
        assert_eq!(out.status.code(), Some(2), "{bin} on {yaml:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("001_broken.yml"), "no file in: {err}");
        assert!(err.contains(key), "no key {key} in: {err}");
    }
}

#[test]
fn a_gateway_that_cannot_verify_its_callers_is_named() {
    // dev hd-1: TLS with verify_client false (as the original); dev hd-2: client certificates.
    let settings = settings_with_certs();
    let out = check(
        HYPER,
        "HYPER_SETTINGS",
        &settings.path().join("dev/roles/hd-1"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("WARNING: ")
            && l.contains("cannot verify its callers")
            && l.contains("operator hd-1")),
        "{text}"
    );
    assert!(text.contains("callers=UNVERIFIED"), "{text}");
    let out = check(
        HYPER,
        "HYPER_SETTINGS",
        &settings.path().join("dev/roles/hd-2"),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("WARNING"), "{text}");
    assert!(text.contains("callers=operator"), "{text}");
}

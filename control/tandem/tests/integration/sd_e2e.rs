//! The directory end to end with the real binaries and the repository's roles and scripts:
//! `hyper certs`, `sd run` (test role sd-1), `scripts/sd-setup.sh` (signed by hd-1), then
//! `hyper sd get-entries` lists the dev operators.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const HYPER: &str = env!("CARGO_BIN_EXE_hyper");
const SD: &str = env!("CARGO_BIN_EXE_sd");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when dropped (a failing assert must not leave `sd` running).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sd` and waits (bounded) for its "sd listening" log line.
fn start_sd(settings: &Path, port: u16) -> Guard {
    let mut child = Command::new(SD)
        .arg("run")
        .env("SD_SETTINGS", settings)
        .env("TANDEM_TEST_SD_PORT", port.to_string())
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("sd listening") {
                let _ = tx.send(());
            }
        }
    });
    let guard = Guard(child);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("sd did not start listening within 30 s");
    guard
}

#[test]
fn certs_sd_run_sd_setup_and_get_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    copy_dir(&repo().join("settings/test/roles"), &root.join("roles"));
    copy_dir(
        &repo().join("settings/dev/directory/default"),
        &root.join("directory/default"),
    );

    let certs = Command::new(HYPER)
        .args(["certs", "--certs-dir"])
        .arg(root.join("certs"))
        .arg("--directory-dir")
        .arg(root.join("directory"))
        .output()
        .unwrap();
    assert!(
        certs.status.success(),
        "{}",
        String::from_utf8_lossy(&certs.stderr)
    );
    assert!(root.join("directory/002_certificates.json").exists());

    let port = free_port();
    let _sd = start_sd(&root.join("roles/sd-1"), port);
    let bin_dir = Path::new(HYPER).parent().unwrap();
    for (dir, reset) in [
        (root.join("directory"), Some("--reset")),
        (root.join("directory/default"), None),
    ] {
        let mut setup = Command::new(repo().join("scripts/sd-setup.sh"));
        setup
            .arg(&dir)
            .args(reset)
            .env("BIN_DIR", bin_dir)
            .env("SIGNER", root.join("roles/hd-1"))
            .env("TANDEM_TEST_SD_PORT", port.to_string());
        let out = setup.output().unwrap();
        assert!(
            out.status.success(),
            "sd-setup {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = Command::new(HYPER)
        .args(["sd", "get-entries"])
        .env("HYPER_SETTINGS", root.join("roles/hd-2"))
        .env("TANDEM_TEST_SD_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for op in [
        "hd-1",
        "hd-2",
        "ls-1",
        "public-proxy-1.ga",
        "private-proxy-1.ga",
    ] {
        assert!(names.contains(&op), "{op} missing from {names:?}");
    }
    let hd2 = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "hd-2")
        .unwrap();
    assert_eq!(hd2["groups"], serde_json::json!(["health-departments"]));
    assert_eq!(
        hd2["certificates"].as_array().unwrap().len(),
        2,
        "signing and encryption fingerprints are pinned"
    );

    // A second `--reset` setup (fresh timestamps) replaces the chain instead of failing on stale pins.
    let out = Command::new(repo().join("scripts/sd-setup.sh"))
        .arg(root.join("directory"))
        .arg("--reset")
        .env("BIN_DIR", bin_dir)
        .env("SIGNER", root.join("roles/hd-1"))
        .env("TANDEM_TEST_SD_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sd_refuses_bad_settings_with_file_key_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("001_default.yml"),
        "jsonrpc_server:\n  bind_address: \"localhost:1\"\n  bogus: 1\n",
    )
    .unwrap();
    let out = Command::new(SD)
        .arg("check-settings")
        .env("SD_SETTINGS", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("001_default.yml"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn sign_then_verify_and_tampering_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    copy_dir(&repo().join("settings/test/roles"), &root.join("roles"));
    let certs = Command::new(HYPER)
        .args(["certs", "--certs-dir"])
        .arg(root.join("certs"))
        .arg("--directory-dir")
        .arg(root.join("directory"))
        .output()
        .unwrap();
    assert!(certs.status.success());
    let data = root.join("data.json");
    std::fs::write(&data, r#"{"hello": "world", "n": 1}"#).unwrap();
    let hyper = |args: &[&str]| {
        Command::new(HYPER)
            .args(args)
            .env("HYPER_SETTINGS", root.join("roles/hd-1"))
            .output()
            .unwrap()
    };
    let signed = hyper(&["sd", "sign", data.to_str().unwrap()]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let signed_file = root.join("signed.json");
    std::fs::write(&signed_file, &signed.stdout).unwrap();

    let ok = hyper(&["sd", "verify", signed_file.to_str().unwrap(), "hd-1"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("hd-1"));

    let wrong_name = hyper(&["sd", "verify", signed_file.to_str().unwrap(), "hd-2"]);
    assert!(
        !wrong_name.status.success(),
        "a certificate for hd-1 is not valid for hd-2"
    );

    let mut value: serde_json::Value = serde_json::from_slice(&signed.stdout).unwrap();
    value["data"]["n"] = serde_json::json!(2);
    std::fs::write(&signed_file, serde_json::to_vec(&value).unwrap()).unwrap();
    let tampered = hyper(&["sd", "verify", signed_file.to_str().unwrap(), "hd-1"]);
    assert!(
        !tampered.status.success(),
        "a changed value breaks the signature"
    );
}

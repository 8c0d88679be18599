//! The `sd` binary as a child process: started on a role directory written for a [`TestPki`], with
//! the addresses it logs once listening.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use tandem_testkit::pki::TestPki;
use tandem_testkit::process::{Proc, spawn};
use tandem_testkit::sd::OPS;

/// The `sd` binary cargo built for these tests.
pub const SD: &str = env!("CARGO_BIN_EXE_sd");

/// Starts the `sd` binary on `settings` and returns it with its address once it listens (bounded).
pub fn spawn_sd(settings: &Path) -> (Proc, SocketAddr) {
    let (child, addrs) = spawn_sd_with(settings, &["sd listening"]);
    (child, addrs[0])
}

/// Starts the `sd` binary and returns the address logged with each of `events`, in order
/// (bounded wait; the log lines seen are in the panic message when it does not come up).
pub fn spawn_sd_with(settings: &Path, events: &[&str]) -> (Proc, Vec<SocketAddr>) {
    let mut sd = spawn(
        "sd",
        SD,
        &["run"],
        &[("SD_SETTINGS".into(), settings.display().to_string())],
    );
    let addrs = sd.wait_for_addresses(events);
    (sd, addrs)
}

/// A test PKI under `dir/pki` and an sd role under `dir` on a file datastore (`dir/sd.records`)
/// with `extra_yaml` appended (see [`write_settings`]).
pub fn file_store_role(dir: &Path, extra_yaml: &str) -> (TestPki, std::path::PathBuf) {
    let pki = TestPki::generate(&dir.join("pki"), OPS).unwrap();
    let store = format!(
        "    type: file\n    settings:\n      filename: \"{}\"",
        dir.join("sd.records").display()
    );
    let role = write_settings(dir, &pki, &store, extra_yaml);
    (pki, role)
}

/// Writes an sd role directory under `dir` serving on 127.0.0.1:0 with `datastore_yaml` (indented
/// four spaces) and `extra_yaml` appended; returns the role directory.
pub fn write_settings(
    dir: &Path,
    pki: &TestPki,
    datastore_yaml: &str,
    extra_yaml: &str,
) -> std::path::PathBuf {
    let role = dir.join("role");
    std::fs::create_dir_all(&role).unwrap();
    let yaml = format!(
        "jsonrpc_server:\n  bind_address: \"127.0.0.1:0\"\n  tls:\n    ca_certificate_files: [\"{root}\"]\n    certificate_file: \"{cert}\"\n    key_file: \"{key}\"\ndirectory:\n  datastore:\n{datastore_yaml}\n  ca_certificate_files: [\"{root}\"]\n  ca_intermediate_certificate_files: [\"{inter}\"]\n{extra_yaml}",
        root = pki.root_cert().display(),
        inter = pki.intermediate_cert().display(),
        cert = pki.cert("sd-1").display(),
        key = pki.key("sd-1").display(),
    );
    std::fs::write(role.join("001_default.yml"), yaml).unwrap();
    role
}

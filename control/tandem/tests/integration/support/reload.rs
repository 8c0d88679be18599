//! Helpers of the reload and socket-activation suites: an `sd` role whose certificate and key are
//! copies the test can replace, a TLS client that reports the certificate it was served, SIGHUP,
//! and `sd` started the way systemd starts a socket-activated service.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tandem_testkit::hostile::{COMPLETES, connect_from, src};
use tandem_testkit::pki::TestPki;
use tandem_testkit::process::Proc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::sd_process::SD;

/// An sd role under `dir` whose TLS certificate and key are `live/sd.crt` and `live/sd.key`
/// (copies of sd-1's), with a metrics port and `extra_yaml` appended. Returns the role directory.
pub fn live_role(dir: &Path, pki: &TestPki, extra_yaml: &str) -> PathBuf {
    let live = dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    install(dir, &pki.cert("sd-1"), &pki.key("sd-1"));
    let role = dir.join("role");
    std::fs::create_dir_all(&role).unwrap();
    let yaml = format!(
        "jsonrpc_server:\n  bind_address: \"127.0.0.1:0\"\n  tls:\n    ca_certificate_files: [\"{root}\"]\n    certificate_file: \"{cert}\"\n    key_file: \"{key}\"\ndirectory:\n  datastore:\n    type: file\n    settings:\n      filename: \"{store}\"\n  ca_certificate_files: [\"{root}\"]\n  ca_intermediate_certificate_files: [\"{inter}\"]\nmetrics:\n  bind_address: \"127.0.0.1:0\"\n{extra_yaml}",
        root = pki.root_cert().display(),
        inter = pki.intermediate_cert().display(),
        cert = live.join("sd.crt").display(),
        key = live.join("sd.key").display(),
        store = dir.join("sd.records").display(),
    );
    std::fs::write(role.join("001_default.yml"), yaml).unwrap();
    role
}

/// Installs `cert` and `key` as the live certificate and key of [`live_role`] (atomically, as a
/// deployment tool would: write beside, rename over).
pub fn install(dir: &Path, cert: &Path, key: &Path) {
    let live = dir.join("live");
    for (from, name) in [(cert, "sd.crt"), (key, "sd.key")] {
        let tmp = live.join(format!("{name}.new"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, live.join(name)).unwrap();
    }
}

/// The DER of the first certificate in a PEM file.
pub fn der_of(pem_file: &Path) -> CertificateDer<'static> {
    tandem_net::tls::load_certificates(pem_file)
        .unwrap()
        .remove(0)
}

/// A TLS connection to sd as hd-1 from `127.0.0.last`, and the leaf certificate sd presented.
pub async fn tls_to_sd(
    pki: &TestPki,
    addr: SocketAddr,
    last: u8,
) -> (TlsStream<TcpStream>, CertificateDer<'static>) {
    let tls: Arc<rustls::ClientConfig> =
        tandem_net::tls::client_config(&pki.client_tls_settings("hd-1", "sd-1"), &[b"http/1.1"])
            .unwrap();
    let tcp = connect_from(src(last), addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("sd-1").unwrap();
    let stream = tokio::time::timeout(COMPLETES, TlsConnector::from(tls).connect(name, tcp))
        .await
        .expect("TLS handshake within bound")
        .expect("TLS handshake");
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    (stream, leaf)
}

/// Sends `signal` to `child`.
pub fn signal(child: &Proc, signal: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0, "kill({signal})");
}

/// Starts `sd run` as systemd starts a socket-activated service: `listener` becomes its fd 3,
/// with `LISTEN_FDS=1`, `LISTEN_FDNAMES=jsonrpc_server` and `LISTEN_PID` set to the pid of the
/// process that execs sd (a shell sets it to its own pid, then execs).
pub fn spawn_activated_sd(settings: &Path, listener: &std::net::TcpListener) -> Proc {
    let fd = listener.as_raw_fd();
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" run", SD])
        .env("SD_SETTINGS", settings)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "jsonrpc_server")
        .env("RUST_LOG", "info");
    // SAFETY: dup2 and fcntl are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // Already fd 3: only the close-on-exec flag std set must go.
                if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) != 3 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Proc::start("sd", command)
}

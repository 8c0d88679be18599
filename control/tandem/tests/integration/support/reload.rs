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
    spawn_activated(
        "sd",
        SD,
        &["run"],
        &[("SD_SETTINGS".into(), settings.display().to_string())],
        &[("jsonrpc_server", listener)],
    )
}

/// Starts `bin args` as systemd starts a socket-activated service: the `sockets` become its fds
/// 3, 4, ... in order, named in `LISTEN_FDNAMES`, with `LISTEN_FDS` and `LISTEN_PID` (set by a
/// shell to its own pid, which then execs `bin`).
pub fn spawn_activated(
    name: &'static str,
    bin: &str,
    args: &[&str],
    env: &[(String, String)],
    sockets: &[(&str, &std::net::TcpListener)],
) -> Proc {
    assert!(sockets.len() <= 16, "at most 16 sockets");
    let fds: Vec<i32> = sockets.iter().map(|(_, l)| l.as_raw_fd()).collect();
    let names: Vec<&str> = sockets.iter().map(|(n, _)| *n).collect();
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", bin])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env("RUST_LOG", "info");
    // SAFETY: fcntl and dup2 are async-signal-safe, and nothing allocates between fork and exec
    // (`fds` was built before).
    unsafe {
        command.pre_exec(move || {
            // First out of the way (close-on-exec copies above any target), then into place: dup2
            // clears close-on-exec on 3, 4, ...
            let mut high = [0i32; 16];
            for (i, fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().take(fds.len()).enumerate() {
                let target = 3 + i as i32;
                if libc::dup2(*fd, target) != target {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Proc::start(name, command)
}

/// What a client calling in a loop across a restart saw.
#[derive(Default)]
pub struct Tally {
    /// Calls answered.
    pub served: std::sync::atomic::AtomicU64,
    /// Connections refused.
    pub refused: std::sync::atomic::AtomicU64,
    /// Calls not answered (cut, reset, failed).
    pub failed: std::sync::atomic::AtomicU64,
    /// Why they failed.
    pub errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    /// Waits (bounded) until more than `n` calls were served.
    pub async fn served_beyond(&self, n: u64) {
        tokio::time::timeout(COMPLETES, async {
            while self.served() <= n {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            let errors = self.errors.lock().unwrap();
            let last: Vec<_> = errors.iter().rev().take(5).collect();
            panic!("the client is not being served; last errors: {last:?}")
        });
    }

    /// Calls served so far.
    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one call's outcome.
    pub fn count(&self, outcome: Result<(), String>) {
        use std::sync::atomic::Ordering::Relaxed;
        match outcome {
            Ok(()) => self.served.fetch_add(1, Relaxed),
            Err(e) => {
                self.errors.lock().unwrap().push(e);
                self.failed.fetch_add(1, Relaxed)
            }
        };
    }

    /// Counts a refused connection.
    pub fn refused(&self) {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Panics unless nothing was refused and every call was answered.
    pub fn assert_clean(&self, what: &str, logs: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!(self.refused.load(Relaxed), 0, "{what}: connections refused");
        assert_eq!(
            self.failed.load(Relaxed),
            0,
            "{what}: calls cut at the restart: {:?}\n{logs}",
            self.errors.lock().unwrap(),
        );
    }
}

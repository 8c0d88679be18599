//! Runs the real binaries with the repository's test roles on free ports: a whole Tandem mesh
//! (sd, the public proxy, its Hyper node, hd-1, hd-2) for end-to-end tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tandem_net::http::JsonRpcClient;
use tandem_settings::TlsSettings;

pub const HYPER: &str = env!("CARGO_BIN_EXE_hyper");
pub const SD: &str = env!("CARGO_BIN_EXE_sd");
pub const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// How long a process may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

pub fn copy_dir(from: &Path, to: &Path) {
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

/// Ports of the test roles (`TANDEM_TEST_*` variables), all free when chosen.
pub fn free_ports() -> BTreeMap<&'static str, u16> {
    const VARS: [&str; 11] = [
        "TANDEM_TEST_SD_PORT",
        "TANDEM_TEST_HD1_GRPC_PORT",
        "TANDEM_TEST_HD1_JSONRPC_PORT",
        "TANDEM_TEST_HD2_GRPC_PORT",
        "TANDEM_TEST_HD2_JSONRPC_PORT",
        "TANDEM_TEST_PPH_GRPC_PORT",
        "TANDEM_TEST_PPH_JSONRPC_PORT",
        "TANDEM_TEST_PP_TLS_PORT",
        "TANDEM_TEST_PP_INTERNAL_PORT",
        "TANDEM_TEST_PP_JSONRPC_PORT",
        "TANDEM_TEST_PP_CONTROL_PORT",
    ];
    // Ports from 127.0.0.1:0 come from the kernel's ephemeral range, where every other test's
    // connections and listeners live too: one could take a port between our choice and the child's
    // bind. So take a block below that range (20000..32000), starting at a block derived from our
    // pid (concurrent test processes start in different blocks), and keep the first block whose
    // ports are all free.
    const FIRST: u16 = 20_000;
    const BLOCKS: u16 = 1_000;
    let width = VARS.len() as u16;
    let start = (std::process::id() % u32::from(BLOCKS)) as u16;
    for i in 0..BLOCKS {
        let base = FIRST + ((start + i) % BLOCKS) * width;
        let ports: Vec<u16> = (base..base + width).collect();
        let free = ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if free {
            return VARS.iter().copied().zip(ports).collect();
        }
    }
    panic!(
        "no block of {width} free ports in {FIRST}..{}",
        FIRST + BLOCKS * width
    )
}

/// A child process killed on drop, with the log lines it printed.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Proc {
    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no {needle:?} within {START_TIMEOUT:?}; it said:\n{}",
                    self.name,
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not stop after SIGTERM",
                self.name
            );
            // Drain output so the child never blocks on a full pipe while stopping.
            let _ = self.lines.recv_timeout(Duration::from_millis(50));
        }
    }
}

impl Proc {
    /// Sends SIGTERM, waits (bounded) for the exit, and returns every line the process wrote to
    /// stderr over its whole life (the lines `wait_for` already read included).
    pub fn stop_and_collect(mut self) -> Vec<String> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // The reader thread ends at EOF (the child exited and closed stderr): all read.
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{} did not stop after SIGTERM", self.name);
            }
        }
        let _ = self.child.wait();
        std::mem::take(&mut self.log)
    }
}

/// Runs a command to completion and returns stdout and stderr; panics with stderr on failure.
pub fn run_capture(bin: &Path, args: &[&str], env: &[(String, String)]) -> (String, String) {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stderr}",
        bin.display()
    );
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin args` with `env`, capturing stderr lines.
pub fn spawn(name: &'static str, bin: &str, args: &[&str], env: &[(String, String)]) -> Proc {
    spawn_logging(name, bin, args, env, "info")
}

/// Like [`spawn`] with the `RUST_LOG` directives `log` (e.g. `debug`).
pub fn spawn_logging(
    name: &'static str,
    bin: &str,
    args: &[&str],
    env: &[(String, String)],
    log: &str,
) -> Proc {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Proc {
        name,
        child,
        lines,
        log: Vec::new(),
    }
}

/// Runs a command to completion and returns stdout; panics with stderr on failure.
pub fn run(bin: &Path, args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The test mesh's files: roles, certificates and a directory whose addresses use our ports.
pub struct Layout {
    pub dir: tempfile::TempDir,
    pub ports: BTreeMap<&'static str, u16>,
}

impl Layout {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        copy_dir(&repo().join("settings/test/roles"), &root.join("roles"));
        let ports = free_ports();
        run(
            Path::new(HYPER),
            &[
                "certs",
                "--certs-dir",
                root.join("certs").to_str().unwrap(),
                "--directory-dir",
                root.join("directory").to_str().unwrap(),
            ],
            &[],
        );
        // The dev directory content, with the gRPC addresses and the proxy's pairing endpoint moved
        // to this mesh's ports.
        let text =
            std::fs::read_to_string(repo().join("settings/dev/directory/default/001_default.json"))
                .unwrap();
        let text = text
            .replace(
                "localhost:8888",
                &format!("localhost:{}", ports["TANDEM_TEST_HD1_GRPC_PORT"]),
            )
            .replace(
                "localhost:8889",
                &format!("localhost:{}", ports["TANDEM_TEST_HD2_GRPC_PORT"]),
            )
            .replace(
                "localhost:5556",
                &format!("localhost:{}", ports["TANDEM_TEST_PPH_GRPC_PORT"]),
            )
            .replace(
                "localhost:9999",
                &format!("localhost:{}", ports["TANDEM_TEST_PP_INTERNAL_PORT"]),
            );
        std::fs::create_dir_all(root.join("directory/default")).unwrap();
        std::fs::write(root.join("directory/default/001_default.json"), text).unwrap();
        Self { dir, ports }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn role(&self, name: &str) -> PathBuf {
        self.root().join("roles").join(name)
    }

    /// The port variables as environment pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.ports
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The environment plus one settings variable.
    pub fn env_with(&self, var: &str, role: &str) -> Vec<(String, String)> {
        let mut env = self.env();
        env.push((var.to_owned(), self.role(role).display().to_string()));
        env
    }

    /// Loads the certificates records (as a new chain) and the directory content, signed by hd-1.
    pub fn sd_setup(&self) {
        let bin_dir = Path::new(HYPER).parent().unwrap().display().to_string();
        for (dir, reset) in [
            (self.root().join("directory"), Some("--reset")),
            (self.root().join("directory/default"), None),
        ] {
            let mut env = self.env();
            env.push(("BIN_DIR".into(), bin_dir.clone()));
            env.push(("SIGNER".into(), self.role("hd-1").display().to_string()));
            let mut args = vec![dir.to_str().unwrap()];
            args.extend(reset);
            run(&repo().join("scripts/sd-setup.sh"), &args, &env);
        }
    }
}

impl Layout {
    /// `proxy ctl` flags for the test proxy's ControlService, as the admin `demo-app`.
    pub fn ctl_args(&self) -> Vec<String> {
        let certs = self.root().join("certs");
        vec![
            "ctl".into(),
            "--addr".into(),
            format!("127.0.0.1:{}", self.ports["TANDEM_TEST_PP_CONTROL_PORT"]),
            "--server-name".into(),
            "public-proxy-1.ga".into(),
            "--cert".into(),
            certs.join("demo-app.crt").display().to_string(),
            "--key".into(),
            certs.join("demo-app.key").display().to_string(),
            "--ca".into(),
            certs.join("root.crt").display().to_string(),
        ]
    }
}

/// A local app's client of hd-1's gateway.
pub fn gateway(layout: &Layout) -> JsonRpcClient {
    let certs = layout.root().join("certs");
    let tls = TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join("hd-1.crt")),
        key_file: Some(certs.join("hd-1.key")),
        server_name: Some("hd-1".into()),
        verify_client: true,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    let config = tandem_net::tls::client_config(&tls, &[]).unwrap();
    let port = layout.ports["TANDEM_TEST_HD1_JSONRPC_PORT"];
    JsonRpcClient::new(
        &format!("https://127.0.0.1:{port}/jsonrpc"),
        Some(config),
        Some("hd-1"),
        Duration::from_secs(30),
    )
    .unwrap()
}

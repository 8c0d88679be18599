//! A Hyper mesh of real binaries for the `broker` workload: `sd`, `hd-1`, `hd-2` and, for the
//! proxied path, the public proxy and its Hyper node, started from the repository's test roles on
//! free loopback ports (as control/tandem/tests/integration/support/seed.rs does), with the dev PKI from
//! `hyper certs` and the dev directory (`default`: hd-2 behind public-proxy-1.ga; `direct`: hd-2
//! dialed directly) signed by hd-1 and loaded into `sd`.
//!
//! Every child runs in its own process group with `PR_SET_PDEATHSIG`, logs to a file in the
//! mesh's temp dir, and is killed when the mesh is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::mesh_files::{copy_dir, free_ports, run, tail, with_app_method};
use serde::{Deserialize, Serialize};

/// How long one process may take to log that it is ready (release binaries start in well under a
/// second; a loaded 2-core machine building in the background can take many).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between looks at a child's log while waiting for it.
const LOG_POLL: Duration = Duration::from_millis(20);

/// Which directory the mesh loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeshPath {
    /// hd-2's entry has no proxy: hd-1 dials hd-2's gRPC server.
    Direct,
    /// hd-2 is reachable only through public-proxy-1.ga: hd-1 asks the proxy for a pair.
    Proxied,
}

/// What the mesh is started with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MeshSettings {
    /// Directory holding the `sd`, `hyper` and `proxy` binaries.
    pub bin_dir: PathBuf,
    /// Repository root (for `settings/test/roles` and `settings/dev/directory`).
    pub repo: PathBuf,
    /// Direct or proxied.
    pub path: MeshPath,
    /// The proxy engine's `idle_timeout` in seconds: a relayed pair with no byte for this long is
    /// closed, which drops hd-1's cached channel (how `proxied-cold` gets a cold channel).
    pub pair_idle_timeout: Option<f64>,
    /// hd-2's local application (`async-respond`): a `jsonrpc_client` channel to it is added to
    /// hd-2's role, and the method [`APP_METHOD`] to hd-2's `internals` service in the directory.
    pub hd2_app: Option<SocketAddr>,
}

/// The method of hd-2's application that hd-1 may call (`hd-2.bench`).
pub const APP_METHOD: &str = "bench";

/// The port variables of the test roles.
pub(super) const PORT_VARS: [&str; 11] = [
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

/// A running child with its log file.
pub struct MeshProc {
    /// Role name.
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl MeshProc {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MeshProc {
    fn drop(&mut self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals the process group this mesh created for the child (pgid = its pid).
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running mesh.
pub struct Mesh {
    dir: tempfile::TempDir,
    ports: BTreeMap<&'static str, u16>,
    /// Children in start order.
    pub procs: Vec<MeshProc>,
}

impl Mesh {
    /// Starts the mesh and waits until every process said it is ready.
    pub fn start(s: &MeshSettings) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut mesh = Mesh {
            ports: free_ports()?,
            dir,
            procs: Vec::new(),
        };
        mesh.lay_out(s)?;
        mesh.spawn(s, "sd-1", "sd", &["run"], "SD_SETTINGS", "sd listening")?;
        mesh.load_directory(s)?;
        if s.path == MeshPath::Proxied {
            let proxy = ["run", "public"];
            mesh.spawn(
                s,
                "public-proxy-1",
                "proxy",
                &proxy,
                "PROXY_SETTINGS",
                "public proxy started",
            )?;
            let pph = "public-proxy-hyper-1";
            mesh.spawn(
                s,
                pph,
                "hyper",
                &["server", "run"],
                "HYPER_SETTINGS",
                "hyper server running",
            )?;
        }
        mesh.spawn(
            s,
            "hd-2",
            "hyper",
            &["server", "run"],
            "HYPER_SETTINGS",
            "hyper server running",
        )?;
        if s.path == MeshPath::Proxied {
            mesh.wait_log(
                "public-proxy-hyper-1",
                "reverse stream opened operator=hd-2",
            )?;
        }
        mesh.spawn(
            s,
            "hd-1",
            "hyper",
            &["server", "run"],
            "HYPER_SETTINGS",
            "hyper server running",
        )?;
        Ok(mesh)
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The certificates directory (`root.crt`, `<operator>.crt`, `<operator>.key`).
    pub fn certs(&self) -> PathBuf {
        self.root().join("certs")
    }

    /// hd-1's JSON-RPC gateway.
    pub fn gateway(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports["TANDEM_TEST_HD1_JSONRPC_PORT"]))
    }

    /// hd-2's JSON-RPC gateway (where an application answers with `respond`).
    pub fn hd2_gateway(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports["TANDEM_TEST_HD2_JSONRPC_PORT"]))
    }

    /// The proxy's ControlService port (proxied mesh only).
    pub fn control_port(&self) -> u16 {
        self.ports["TANDEM_TEST_PP_CONTROL_PORT"]
    }

    /// `(role, pid)` of every child.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.procs.iter().map(|p| (p.name, p.pid())).collect()
    }

    fn role(&self, name: &str) -> PathBuf {
        self.root().join("roles").join(name)
    }

    fn env(&self) -> Vec<(String, String)> {
        self.ports
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Roles, certificates and the directory content with this mesh's ports.
    fn lay_out(&self, s: &MeshSettings) -> anyhow::Result<()> {
        let root = self.root();
        copy_dir(&s.repo.join("settings/test/roles"), &root.join("roles"))?;
        std::fs::create_dir_all(root.join("data"))?;
        let certs = root.join("certs").display().to_string();
        let directory = root.join("directory").display().to_string();
        run(
            &s.bin_dir.join("hyper"),
            &[
                "certs",
                "--certs-dir",
                &certs,
                "--directory-dir",
                &directory,
            ],
            &[],
        )?;
        let content = match s.path {
            MeshPath::Direct => "settings/dev/directory/direct/001_default.json",
            MeshPath::Proxied => "settings/dev/directory/default/001_default.json",
        };
        let p = &self.ports;
        let text = std::fs::read_to_string(s.repo.join(content))
            .with_context(|| format!("reading {content}"))?
            .replace(
                "localhost:8888",
                &format!("localhost:{}", p["TANDEM_TEST_HD1_GRPC_PORT"]),
            )
            .replace(
                "localhost:8889",
                &format!("localhost:{}", p["TANDEM_TEST_HD2_GRPC_PORT"]),
            )
            .replace(
                "localhost:5556",
                &format!("localhost:{}", p["TANDEM_TEST_PPH_GRPC_PORT"]),
            )
            .replace(
                "localhost:9999",
                &format!("localhost:{}", p["TANDEM_TEST_PP_INTERNAL_PORT"]),
            );
        let text = match s.hd2_app {
            Some(_) => with_app_method(&text)?,
            None => text,
        };
        std::fs::create_dir_all(root.join("directory/content"))?;
        std::fs::write(root.join("directory/content/001_default.json"), text)?;
        if let Some(idle) = s.pair_idle_timeout {
            let yml = format!("public:\n  engine:\n    idle_timeout: {idle}\n");
            std::fs::write(self.role("public-proxy-1").join("002_bench.yml"), yml)?;
        }
        if let Some(app) = s.hd2_app {
            let channel = format!(
                "  - name: bench application\n    type: jsonrpc_client\n    settings:\n      endpoint: http://{app}/jsonrpc\n"
            );
            let file = self.role("hd-2").join("001_default.yml");
            let text = std::fs::read_to_string(&file)?;
            anyhow::ensure!(
                text.contains("channels:\n"),
                "hd-2's role has no channel list"
            );
            let text = text.replacen("channels:\n", &format!("channels:\n{channel}"), 1);
            std::fs::write(file, text)?;
        }
        Ok(())
    }

    /// The certificate records (a new chain) and the directory content, signed by hd-1.
    fn load_directory(&self, s: &MeshSettings) -> anyhow::Result<()> {
        let mut env = self.env();
        env.push((
            "HYPER_SETTINGS".into(),
            self.role("hd-1").display().to_string(),
        ));
        let root = self.root();
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("directory"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files.push(root.join("directory/content/001_default.json"));
        for (i, f) in files.iter().enumerate() {
            let f = f.display().to_string();
            let mut args = vec!["sd", "submit-records"];
            if i == 0 {
                args.push("--reset");
            }
            args.push(&f);
            run(&s.bin_dir.join("hyper"), &args, &env)?;
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        s: &MeshSettings,
        name: &'static str,
        bin: &str,
        args: &[&str],
        settings_var: &str,
        ready: &str,
    ) -> anyhow::Result<()> {
        let log = self.root().join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(s.bin_dir.join(bin));
        cmd.args(args)
            .envs(self.env())
            .env(settings_var, self.role(name))
            .env("NO_COLOR", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        // SAFETY: runs between fork and exec and calls only prctl (async-signal-safe).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {} ({name})", s.bin_dir.join(bin).display()))?;
        self.procs.push(MeshProc { name, child, log });
        self.wait_log(name, ready)
    }

    /// Waits (bounded by [`START_TIMEOUT`]) until `name`'s log contains `needle`.
    fn wait_log(&mut self, name: &str, needle: &str) -> anyhow::Result<()> {
        let until = Instant::now() + START_TIMEOUT;
        let proc = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .context("no such process")?;
        loop {
            let text = std::fs::read_to_string(&proc.log).unwrap_or_default();
            if text.contains(needle) {
                return Ok(());
            }
            if let Some(status) = proc.child.try_wait()? {
                bail!("{name} exited with {status}: {}", tail(&text));
            }
            if Instant::now() >= until {
                bail!(
                    "{name} did not log {needle:?} within {START_TIMEOUT:?}: {}",
                    tail(&text)
                );
            }
            std::thread::sleep(LOG_POLL);
        }
    }
}

/// Where the binaries are by default: beside this harness (`target/release/`).
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

/// The repository this harness was built from.
pub fn default_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

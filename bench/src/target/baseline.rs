//! Baseline relays as child processes on 127.0.0.1 with generated configs in a temp dir:
//! HAProxy (`mode tcp`, splice forced or its defaults), nginx `stream {}`, socat.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::direct::{echo_op, pair_via};
use super::echo::EchoServer;
use super::{Placement, System, Target};
use crate::net::{accept_timeout, dial, free_port, listen};
use crate::procfs::{Resources, process_tree_cpu, tree_resources};
use crate::workload::PairCreation;

/// How long a baseline has to start listening and relay a first connection.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Pause between readiness probes (a refused connect returns at once).
const PROBE_PAUSE: Duration = Duration::from_millis(20);
/// Client connections HAProxy may hold (`maxconn`). HAProxy asks for about 2.5 fds per
/// connection (two sockets plus `maxconn / 4` splice pipes), so 7,500 keeps it under the
/// sandbox's 20,000-fd hard limit.
const MAX_CONNS: usize = 7_500;
/// Connections one nginx worker may hold (`worker_connections`, counting client and upstream
/// sides): 19,000 sockets stay under the 20,000-fd hard limit with room for its own files.
const NGINX_CONNS: usize = 19_000;
/// socat's half-close timeout (`-t`), in seconds: after EOF in one direction socat waits this
/// long for the other before closing both (its default, 0.5 s, cuts bulk transfers that are
/// still running the other way when two cores are shared by 64 pairs).
const SOCAT_HALF_CLOSE_SECS: u32 = 60;
/// socat's copy buffer, in bytes (`-b`), the same as Tandem's copy-path buffer.
const SOCAT_BUF: usize = 64 * 1024;

/// A baseline relay process in front of a backend listener in this process.
pub struct Baseline {
    system: System,
    workers: usize,
    child: Child,
    front: SocketAddr,
    backend: TcpListener,
    echo: Mutex<Option<EchoServer>>,
    _dir: tempfile::TempDir,
}

/// The program a baseline needs.
fn program(system: System) -> &'static str {
    match system {
        System::HaproxySplice | System::HaproxyDefault => "haproxy",
        System::Nginx => "nginx",
        _ => "socat",
    }
}

fn installed(prog: &str) -> bool {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(prog).exists())
}

/// `program -v` output's first line, or `None` when not installed.
pub fn baseline_version(system: System) -> Option<String> {
    let prog = program(system);
    if !installed(prog) {
        return None;
    }
    let flag = if prog == "socat" { "-V" } else { "-v" };
    let out = Command::new(prog).arg(flag).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.to_lowercase().contains("version"))
        .map(|l| l.trim().to_owned())
}

fn haproxy_cfg(front: u16, back: u16, workers: usize, splice: bool) -> String {
    let splice = if splice {
        "    option splice-request\n    option splice-response\n"
    } else {
        ""
    };
    format!(
        "global\n    maxconn {MAX_CONNS}\n    nbthread {workers}\n\ndefaults\n    mode tcp\n\
         {splice}    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\n\
         frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\n\
         backend be\n    server s1 127.0.0.1:{back}\n"
    )
}

fn nginx_cfg(dir: &Path, front: u16, back: u16, workers: usize) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nload_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         worker_rlimit_nofile {};\nevents {{ worker_connections {NGINX_CONNS}; }}\n\
         stream {{\n    server {{\n        listen 127.0.0.1:{front} backlog=4096;\n\
         proxy_pass 127.0.0.1:{back};\n        proxy_half_close on;\n    }}\n}}\n",
        NGINX_CONNS + 500
    )
}

fn command(
    system: System,
    dir: &Path,
    front: u16,
    back: u16,
    workers: usize,
) -> anyhow::Result<Vec<String>> {
    let s = |v: &str| v.to_owned();
    Ok(match system {
        System::HaproxySplice | System::HaproxyDefault => {
            let cfg = dir.join("haproxy.cfg");
            let splice = system == System::HaproxySplice;
            std::fs::write(&cfg, haproxy_cfg(front, back, workers, splice))?;
            vec![s("haproxy"), s("-db"), s("-f"), cfg.display().to_string()]
        }
        System::Nginx => {
            let cfg = dir.join("nginx.conf");
            std::fs::write(&cfg, nginx_cfg(dir, front, back, workers))?;
            let (c, p, e) = (cfg.display(), dir.display(), dir.join("error.log"));
            vec![
                s("nginx"),
                s("-c"),
                c.to_string(),
                s("-p"),
                p.to_string(),
                s("-e"),
                e.display().to_string(),
            ]
        }
        _ => vec![
            s("socat"),
            format!("-b{SOCAT_BUF}"),
            format!("-t{SOCAT_HALF_CLOSE_SECS}"),
            format!("TCP-LISTEN:{front},bind=127.0.0.1,fork,reuseaddr,backlog=4096,nodelay"),
            format!("TCP:127.0.0.1:{back},nodelay"),
        ],
    })
}

impl Baseline {
    /// Starts `system`; `Ok(Err(reason))` when its program is not installed.
    pub fn start(system: System, placement: &Placement) -> anyhow::Result<Result<Self, String>> {
        let prog = program(system);
        if !installed(prog) {
            return Ok(Err(format!(
                "{prog} not installed (make bench installs it: apt-get install -y haproxy socat nginx libnginx-mod-stream)"
            )));
        }
        let dir = tempfile::tempdir()?;
        let backend = listen()?;
        let back = backend.local_addr()?.port();
        let front = free_port()?;
        let mut argv = command(system, dir.path(), front, back, placement.workers.max(1))?;
        if let Some(cpus) = &placement.cpus {
            let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
            argv.splice(
                0..0,
                [String::from("taskset"), String::from("-c"), list.join(",")],
            );
        }
        let log = std::fs::File::create(dir.path().join("stderr.log"))?;
        // Its own process group, so that Drop can kill nginx's workers and socat's forks too;
        // and killed by the kernel if this harness dies first.
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
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
            .with_context(|| format!("spawning {}", argv.join(" ")))?;
        let mut b = Baseline {
            system,
            workers: placement.workers.max(1),
            child,
            front: SocketAddr::from((Ipv4Addr::LOCALHOST, front)),
            backend,
            echo: Mutex::new(None),
            _dir: dir,
        };
        b.wait_ready().with_context(|| {
            let log = std::fs::read_to_string(b._dir.path().join("stderr.log")).unwrap_or_default();
            format!("{} did not start: {}", prog, log.trim())
        })?;
        Ok(Ok(b))
    }

    /// Probes until one connection is relayed to the backend, then discards stray backend
    /// connections from earlier probes.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let until = Instant::now() + READY_WITHIN;
        let mut ready = false;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("exited with {status}");
            }
            if let Ok(probe) = dial(self.front, None)
                && accept_timeout(&self.backend, Duration::from_millis(500))?.is_some()
            {
                drop(probe);
                ready = true;
                break;
            }
            std::thread::sleep(PROBE_PAUSE);
        }
        anyhow::ensure!(ready, "not relaying within {READY_WITHIN:?}");
        while accept_timeout(&self.backend, Duration::from_millis(50))?.is_some() {}
        Ok(())
    }
}

impl Target for Baseline {
    fn system(&self) -> System {
        self.system
    }

    fn open_pair(&self) -> anyhow::Result<(TcpStream, TcpStream)> {
        pair_via(self.front, &self.backend)
    }

    fn prepare_setup(
        &self,
        _ops: usize,
        threads: usize,
        _creation: PairCreation,
    ) -> anyhow::Result<()> {
        let e = EchoServer::start(&self.backend, threads)?;
        *self.echo.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(e);
        Ok(())
    }

    fn setup_op(&self, from: Option<Ipv4Addr>) -> anyhow::Result<()> {
        echo_op(self.front, from)
    }

    fn finish_setup(&self) {
        if let Ok(mut e) = self.echo.lock() {
            e.take();
        }
    }

    fn max_pairs(&self) -> Option<usize> {
        match self.system {
            System::HaproxySplice | System::HaproxyDefault => Some(MAX_CONNS),
            // Each pair is two connections of the worker's budget; 100 kept for the listener and probes.
            System::Nginx => Some((NGINX_CONNS / 2 - 100) * self.workers),
            _ => None,
        }
    }

    fn relay_cpu(&self) -> Option<Duration> {
        Some(process_tree_cpu(self.child.id()))
    }

    fn relay_resources(&self) -> Option<Resources> {
        Some(tree_resources(self.child.id()))
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals the process group this harness created for the child (pgid =
            // the child's pid, set by `process_group(0)`); it holds only the baseline.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_config_forces_splice_only_in_the_splice_variant() {
        let on = haproxy_cfg(1000, 2000, 1, true);
        assert!(on.contains("option splice-request") && on.contains("option splice-response"));
        assert!(on.contains("bind 127.0.0.1:1000") && on.contains("server s1 127.0.0.1:2000"));
        assert!(!haproxy_cfg(1000, 2000, 1, false).contains("splice"));
    }

    #[test]
    fn nginx_config_is_a_stream_proxy() {
        let c = nginx_cfg(Path::new("/tmp/x"), 1000, 2000, 2);
        assert!(c.contains("stream {") && c.contains("proxy_pass 127.0.0.1:2000;"));
        assert!(c.contains("worker_processes 2;") && c.contains("daemon off;"));
    }
}

//! Our binaries as child processes, for the system tests of the `tandem` package (the only package
//! where cargo sets `CARGO_BIN_EXE_*`; callers pass the path in): a [`Proc`] keeps the child's
//! stderr lines, waits (bounded) for a log line or the addresses a listener logs, stops it with
//! SIGTERM and kills it on drop. Also free port blocks for the test roles' fixed-port settings,
//! the repository root, and running a command to completion.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process may take to print a line a test waits for (including start-up): generous,
/// so a loaded machine is never the reason a test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a process may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (this crate lives in `control/testkit`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("control/testkit sits two levels below the repository root")
        .to_path_buf()
}

/// Copies the directory tree `from` to `to`.
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

/// A free port for each of `names` (for settings that name fixed ports, such as the test roles'
/// `TANDEM_TEST_*` variables), consecutive and all free when chosen.
///
/// Ports from 127.0.0.1:0 come from the kernel's ephemeral range, where every other test's
/// connections and listeners live too: one could take a port between our choice and the child's
/// bind. So take a block below that range (20000..32000), starting at a block derived from our
/// pid (concurrent test processes start in different blocks), and keep the first block whose
/// ports are all free.
pub fn free_port_block<'a>(names: &[&'a str]) -> BTreeMap<&'a str, u16> {
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_000;
    let width = u16::try_from(names.len()).expect("a small block");
    assert!(width > 0, "at least one port");
    let blocks = (LAST - FIRST) / width;
    let start = (std::process::id() % u32::from(blocks)) as u16;
    for i in 0..blocks {
        let base = FIRST + ((start + i) % blocks) * width;
        let ports: Vec<u16> = (base..base + width).collect();
        let free = ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if free {
            return names.iter().copied().zip(ports).collect();
        }
    }
    panic!("no block of {width} free ports in {FIRST}..{LAST}")
}

/// A child process killed on drop, with the stderr lines it printed.
pub struct Proc {
    /// Name in panic messages.
    pub name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The lines read so far (by [`Proc::wait_for`] and friends).
    pub log: Vec<String>,
}

/// Starts `bin args` with `env`, capturing stderr lines (`RUST_LOG=info`).
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
    let mut command = Command::new(bin);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", log);
    Proc::start(name, command)
}

impl Proc {
    /// Starts `command` with stdout discarded and stderr captured line by line.
    pub fn start(name: &'static str, mut command: Command) -> Proc {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
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

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
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

    /// Waits (bounded) until a line containing each of `events` was logged with an `address=`
    /// field, and returns those addresses in the order of `events` (a listener is up once it logs
    /// its address).
    pub fn wait_for_addresses(&mut self, events: &[&str]) -> Vec<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut found = vec![None; events.len()];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "{}: not listening within {START_TIMEOUT:?}; it said:\n{}",
                    self.name,
                    self.log.join("\n")
                );
            };
            let addr = line
                .split("address=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next());
            for (slot, event) in found.iter_mut().zip(events) {
                if let (true, Some(addr)) = (line.contains(event), addr) {
                    *slot = Some(addr.parse().unwrap());
                }
            }
            self.log.push(line);
        }
        found.into_iter().map(Option::unwrap).collect()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "{}: kill(SIGTERM)", self.name);
    }

    /// Kills the child with SIGKILL (a crash, not a shutdown) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits at most `limit` for the exit status, draining stderr so the child never blocks on a
    /// full pipe while stopping.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}",
                self.name
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.log.push(line);
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(STOP_TIMEOUT)
    }

    /// Sends SIGTERM, waits (bounded) for the exit, and returns every line the process wrote to
    /// stderr over its whole life (the lines already read included).
    pub fn stop_and_collect(mut self) -> Vec<String> {
        self.sigterm();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            // The reader thread ends at EOF (the child exited and closed stderr): all read.
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("{} did not stop after SIGTERM", self.name);
            }
        }
        let _ = self.child.wait();
        std::mem::take(&mut self.log)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a command to completion and returns stdout; panics with stderr on failure.
pub fn run(bin: &Path, args: &[&str], env: &[(String, String)]) -> String {
    run_capture(bin, args, env).0
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

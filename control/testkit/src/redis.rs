//! A real `redis-server` for tests: [`RedisServer::start`] spawns one on
//! 127.0.0.1 with a free port, AOF on with `appendfsync always` (an acknowledged write survives a
//! SIGKILL of the server), and a private data directory; it is killed and its directory removed
//! on drop. The binary is `redis-server` on `PATH` (override with `TANDEM_REDIS_SERVER`); when it
//! is missing, `start` fails with a message saying so: Redis tests fail, they are never skipped.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tandem_settings::datastore::RedisDatastoreSettings;

/// How long a server may take to print "Ready to accept connections" (including loading its AOF
/// on restart): 20 s, generous for a loaded 2-core CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Start attempts when the chosen port was taken between choosing and binding: 5.
const PORT_ATTEMPTS: usize = 5;

/// Server log lines kept for error messages: 30.
const LOG_LINES: usize = 30;

enum Event {
    Ready,
    Exited,
}

/// What a started server is.
#[derive(Debug, Clone)]
enum Role {
    /// A primary (AOF on, `appendfsync always`).
    Primary,
    /// A replica of the primary at this address (AOF on, `appendfsync always`).
    Replica(SocketAddr),
    /// A Sentinel reading (and rewriting) `sentinel.conf` in its directory.
    Sentinel,
}

impl Role {
    /// The log line that says the server is ready.
    fn ready_line(&self) -> &'static str {
        match self {
            Role::Primary | Role::Replica(_) => "Ready to accept connections",
            Role::Sentinel => "+monitor master",
        }
    }
}

fn program() -> OsString {
    std::env::var_os("TANDEM_REDIS_SERVER").unwrap_or_else(|| "redis-server".into())
}

/// A running `redis-server` owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    program: OsString,
    /// Arguments after the common ones (a role: replica, Sentinel).
    role: Role,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    reader: Option<JoinHandle<()>>,
}

impl RedisServer {
    /// Starts a server on 127.0.0.1 with a free port and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        Self::start_program(program(), Role::Primary, None)
    }

    /// Starts a replica of the server at `primary` (same options as [`RedisServer::start`]).
    pub fn start_replica_of(primary: SocketAddr) -> io::Result<Self> {
        Self::start_program(program(), Role::Replica(primary), None)
    }

    /// Starts a Sentinel whose configuration file holds `config` (`sentinel monitor ...` lines).
    pub(crate) fn start_sentinel(config: &str) -> io::Result<Self> {
        Self::start_program(program(), Role::Sentinel, Some(config))
    }

    fn start_program(program: OsString, role: Role, config: Option<&str>) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "tandem-redis-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        if let Some(config) = config {
            std::fs::write(dir.join("sentinel.conf"), config)?;
        }
        let mut server = Self {
            program,
            role,
            port: 0,
            dir,
            child: None,
            reader: None,
        };
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no start attempt was made")))
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's data directory (holds the AOF).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Datastore settings for this server and list `key` (database 0, no password).
    pub fn settings(&self, key: &str) -> RedisDatastoreSettings {
        RedisDatastoreSettings::plain(self.addr().to_string(), key.to_string())
    }

    /// Kills the server with SIGKILL (a crash, not a shutdown) and waits for it to exit.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        if let Some(reader) = self.reader.take() {
            reader
                .join()
                .map_err(|_| io::Error::other("redis log reader panicked"))?;
        }
        Ok(())
    }

    /// Kills the server (if running) and starts it again on the same port and directory, so it
    /// reloads its AOF; waits until it answers `PING`.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill()?;
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let program = &self.program;
        let mut command = Command::new(program);
        match &self.role {
            Role::Primary => {}
            Role::Replica(primary) => {
                command.args([
                    "--replicaof",
                    &primary.ip().to_string(),
                    &primary.port().to_string(),
                ]);
            }
            Role::Sentinel => {
                command
                    .arg(self.dir.join("sentinel.conf"))
                    .arg("--sentinel");
            }
        }
        if !matches!(self.role, Role::Sentinel) {
            command
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .args([
                    "--repl-diskless-sync",
                    "yes",
                    "--repl-diskless-sync-delay",
                    "0",
                ]);
        }
        let mut child = command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    e.kind(),
                    format!("{program:?} not found: install redis-server (the Makefile does) or set TANDEM_REDIS_SERVER"),
                ),
                _ => e,
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("redis-server stdout not captured"))?;
        let (tx, rx) = sync_channel(2);
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let log_for_reader = Arc::clone(&log);
        let ready = self.role.ready_line();
        self.reader = Some(std::thread::spawn(move || {
            read_log(stdout, ready, &tx, &log_for_reader)
        }));
        self.child = Some(child);
        if let Err(e) = self.wait_ready(&rx, &log) {
            self.kill()?;
            return Err(e);
        }
        Ok(())
    }

    fn wait_ready(&self, rx: &Receiver<Event>, log: &Mutex<VecDeque<String>>) -> io::Result<()> {
        let lines = || {
            log.lock()
                .map(|l| Vec::from(l.clone()).join("\n"))
                .unwrap_or_default()
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Event::Ready) => self.ping(),
            Ok(Event::Exited) | Err(RecvTimeoutError::Disconnected) => {
                let lines = lines();
                let kind = if lines.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                Err(io::Error::new(
                    kind,
                    format!("redis-server on port {} exited:\n{lines}", self.port),
                ))
            }
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "redis-server not ready after {READY_TIMEOUT:?}:\n{}",
                    lines()
                ),
            )),
        }
    }

    fn ping(&self) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.addr())?;
        stream.set_read_timeout(Some(READY_TIMEOUT))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0; 7];
        stream.read_exact(&mut reply)?;
        if &reply != b"+PONG\r\n" {
            return Err(io::Error::other(format!(
                "unexpected PING reply {:?}",
                String::from_utf8_lossy(&reply)
            )));
        }
        Ok(())
    }
}

fn read_log(stdout: impl Read, ready: &str, tx: &SyncSender<Event>, log: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains(ready) {
            let _ = tx.try_send(Event::Ready);
        }
        if let Ok(mut log) = log.lock() {
            if log.len() == LOG_LINES {
                log.pop_front();
            }
            log.push_back(line);
        }
    }
    let _ = tx.try_send(Event::Exited);
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            tracing::warn!(error = %e, "cannot stop redis-server");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let err =
            RedisServer::start_program("/nonexistent/redis-server".into(), Role::Primary, None)
                .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("install redis-server"), "{err}");
    }

    #[test]
    fn starts_answers_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start().unwrap();
        let addr = server.addr();
        server.ping().unwrap();
        server.restart().unwrap();
        assert_eq!(server.addr(), addr);
        server.ping().unwrap();
        server.kill().unwrap();
        assert!(server.ping().is_err(), "killed means not answering");
        let dir = server.dir().to_path_buf();
        drop(server);
        assert!(!dir.exists(), "the data directory is removed on drop");
    }
}

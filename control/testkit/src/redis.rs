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
use tandem_settings::secret::Secret;

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

/// A running `redis-server` owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    program: OsString,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    reader: Option<JoinHandle<()>>,
}

impl RedisServer {
    /// Starts a server on 127.0.0.1 with a free port and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        Self::start_program(
            std::env::var_os("TANDEM_REDIS_SERVER").unwrap_or_else(|| "redis-server".into()),
        )
    }

    fn start_program(program: OsString) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "tandem-redis-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut server = Self {
            program,
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
        RedisDatastoreSettings {
            addresses: vec![self.addr().to_string()],
            key: key.to_string(),
            master_name: String::new(),
            database: 0,
            password: Secret::default(),
        }
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
        let mut child = Command::new(program)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--daemonize", "no", "--logfile", ""])
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
        self.reader = Some(std::thread::spawn(move || {
            read_log(stdout, &tx, &log_for_reader)
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

fn read_log(stdout: impl Read, tx: &SyncSender<Event>, log: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains("Ready to accept connections") {
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
        let err = RedisServer::start_program("/nonexistent/redis-server".into()).unwrap_err();
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

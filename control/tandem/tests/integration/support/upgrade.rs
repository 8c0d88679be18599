//! What the binary-upgrade system tests share: the proxy binary copied where a test can replace it,
//! long token lifetimes, the processes that took over, pairs from `proxy ctl pair create`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::proxy_process::{STEP, ctl};
use super::seed::{Layout, PROXY};

/// The proxy binary copied into the test directory, started from there.
pub(crate) fn copy_binary(layout: &Layout) -> PathBuf {
    let dir = layout.root().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy");
    std::fs::copy(PROXY, &path).unwrap();
    path
}

/// Tokens live 300 s (`accept_timeout`): the waiting side outlives a slow machine's upgrades.
pub(crate) fn with_long_ttl(layout: &Layout) {
    std::fs::write(
        layout.role("public-proxy-1").join("003_ttl.yml"),
        "public:\n  accept_timeout: 300\n",
    )
    .unwrap();
}

/// Kills the processes that took over (not our children) when the test ends, however it ends.
#[derive(Default)]
pub(crate) struct Successors(pub(crate) Vec<i32>);

impl Drop for Successors {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: kill(2) of a pid this test's proxy started; it may be gone already.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
}

/// Sends `sig` to `pid` (a proxy this test runs).
pub(crate) fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) of the proxy this test runs.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// `pair create --json`: the endpoint and the two tokens (not dialled).
pub(crate) fn tokens(layout: &Layout) -> (String, [Vec<u8>; 2]) {
    let text = ctl(layout, &["pair", "create", "--json"]).expect("pair create");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let token = |i: usize| STANDARD.decode(doc["tokens"][i].as_str().unwrap()).unwrap();
    (
        doc["endpoint"].as_str().unwrap().to_owned(),
        [token(0), token(1)],
    )
}

/// Connects to `endpoint` and sends `token` (short timeouts both ways).
pub(crate) fn dial(endpoint: &str, token: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.write_all(token).unwrap();
    s
}

/// One message each way through a relaying pair.
pub(crate) fn ping_pong(a: &mut TcpStream, b: &mut TcpStream) {
    let mut buf = [0u8; 4];
    a.write_all(b"ping").unwrap();
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

/// Waits until `pid` is gone (it is not our child: no waitpid): its pidfd becomes readable when
/// it exits (a zombie counts as gone), within `STEP`.
pub(crate) fn wait_gone(pid: i32) {
    // SAFETY: pidfd_open takes a pid and flags; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ESRCH),
            "pidfd_open({pid}): {e}"
        );
        return; // already reaped
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    let mut p = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(STEP.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for the call.
    let ready = unsafe { libc::poll(&mut p, 1, ms) };
    assert_eq!(ready, 1, "pid {pid} still running after {STEP:?}");
}

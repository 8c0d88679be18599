//! The real `proxy run public` under a test that plays systemd's side of `Type=notify` with
//! `NotifyAccess=all` (issue 15): the test binds the notification socket (a `UnixDatagram` with
//! `SO_PASSCRED`, so each datagram carries its sender's pid, as systemd reads it) and starts the
//! proxy with `NOTIFY_SOCKET` naming it. The proxy says `READY=1` when it serves and
//! `RELOADING=1`/`READY=1` around a SIGHUP reload; on SIGUSR2 the **new** process (the sender,
//! not the old pid) says `MAINPID=<its own pid>` and `READY=1`; the old process then exits 0
//! without `STOPPING=1` (which would stop the service); the new process serves the live pair and
//! new pairs, and says `STOPPING=1` on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;

use crate::support::proxy_process::{HyperStub, STEP};
use crate::support::seed::Layout;
use crate::support::upgrade::{
    Successors, copy_binary, dial, ping_pong, signal, tokens, wait_gone, with_long_ttl,
};
use tandem_testkit::process::spawn;

/// One notification: its text and the pid the kernel says sent it.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) text: String,
    pub(crate) sender: i32,
}

impl Datagram {
    pub(crate) fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }

    pub(crate) fn value(&self, key: &str) -> Option<String> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    }
}

/// The manager's socket: bound at `notify.sock` in `dir` (the test's own), with `SO_PASSCRED` on;
/// and the value of `NOTIFY_SOCKET` naming it.
pub(crate) fn manager_socket(dir: &std::path::Path) -> (UnixDatagram, String) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int from `on`, on a socket this test owns.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_PASSCRED");
    sock.set_read_timeout(Some(STEP)).unwrap();
    (sock, path.display().to_string())
}

/// Receives one datagram with its `SCM_CREDENTIALS` (the test fails after [`STEP`]).
#[track_caller]
pub(crate) fn receive(sock: &UnixDatagram) -> Datagram {
    let mut buf = [0u8; 4096];
    // Room for one ucred control message (and then some).
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: recvmsg writes at most the lengths given into `buf` and `control`.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    assert!(
        n >= 0,
        "no notification within {STEP:?}: {}",
        std::io::Error::last_os_error()
    );
    let mut sender = None;
    // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::ucred>());
                sender = Some(cred.pid);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Datagram {
        text: String::from_utf8(buf[..n as usize].to_vec()).unwrap(),
        sender: sender.expect("SCM_CREDENTIALS with the datagram"),
    }
}

/// Receives until a datagram with `line` arrives; returns it and every one before it.
#[track_caller]
pub(crate) fn receive_until(sock: &UnixDatagram, line: &str) -> (Datagram, Vec<Datagram>) {
    let mut before = Vec::new();
    loop {
        let d = receive(sock);
        if d.has(line) {
            return (d, before);
        }
        before.push(d);
    }
}

/// Whatever is queued now (non-blocking).
pub(crate) fn pending(sock: &UnixDatagram) -> Vec<String> {
    sock.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    sock.set_nonblocking(false).unwrap();
    out
}

#[test]
fn under_a_notify_socket_the_upgraded_process_becomes_main_pid_and_ready() {
    let layout = Layout::new();
    with_long_ttl(&layout);
    let binary = copy_binary(&layout);
    let (manager, notify_path) = manager_socket(layout.root());
    let _hyper = HyperStub::start(&layout);
    let mut env = layout.env_with("PROXY_SETTINGS", "public-proxy-1");
    env.push(("NOTIFY_SOCKET".into(), notify_path));
    let mut proxy = spawn(
        "proxy",
        binary.to_str().unwrap(),
        &["run", "public", "--upgrade-ready-within", "60"],
        &env,
    );
    let old = proxy.id() as i32;
    let mut successors = Successors::default();

    // Started: READY=1 from the process systemd started.
    let (ready, before) = receive_until(&manager, "READY=1");
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    assert_eq!(ready.sender, old);
    assert_eq!(ready.value("MAINPID"), None, "no MAINPID at a plain start");
    // The listeners serve once READY=1 is sent: a pair is issued and relays.
    let (endpoint, t) = tokens(&layout);
    let (mut a, mut b) = (dial(&endpoint, &t[0]), dial(&endpoint, &t[1]));
    ping_pong(&mut a, &mut b);

    // A reload: RELOADING=1 (with the monotonic clock), then READY=1.
    signal(old, libc::SIGHUP);
    let reloading = receive(&manager);
    assert!(reloading.has("RELOADING=1"), "{reloading:?}");
    let usec: u64 = reloading.value("MONOTONIC_USEC").unwrap().parse().unwrap();
    assert!(usec > 0);
    let reloaded = receive(&manager);
    assert!(reloaded.has("READY=1"), "{reloaded:?}");
    assert_eq!((reloading.sender, reloaded.sender), (old, old));

    // The upgrade: the new process names itself the main process, and is ready.
    signal(old, libc::SIGUSR2);
    let (took_over, before) = receive_until(&manager, "READY=1");
    assert!(
        before.is_empty(),
        "nothing before the new READY=1: {before:?}"
    );
    let main_pid: i32 = took_over
        .value("MAINPID")
        .expect("MAINPID with the new process's READY=1")
        .parse()
        .unwrap();
    successors.0.push(main_pid);
    assert_ne!(main_pid, old, "MAINPID names the new process");
    assert_eq!(
        took_over.sender, main_pid,
        "the new process itself sent MAINPID={main_pid}"
    );
    let done = proxy.wait_for("upgrade complete");
    assert!(done.contains(&format!("new_pid={main_pid}")), "{done}");
    assert_eq!(
        proxy.wait_exit(STEP).code(),
        Some(0),
        "the old process exits 0"
    );
    // The old process said nothing more: STOPPING=1 from it would stop the service.
    let late = pending(&manager);
    assert!(
        late.iter().all(|d| !d.contains("STOPPING=1")),
        "no STOPPING=1 after a hand-over: {late:?}"
    );

    // The new process serves: the live pair relays, a new pair is issued and relays.
    ping_pong(&mut a, &mut b);
    let (e2, t2) = tokens(&layout);
    let (mut c, mut d) = (dial(&e2, &t2[0]), dial(&e2, &t2[1]));
    ping_pong(&mut c, &mut d);

    // Shutdown of the new main process: STOPPING=1 from it.
    signal(main_pid, libc::SIGTERM);
    drop((a, b, c, d));
    let (stopping, _) = receive_until(&manager, "STOPPING=1");
    assert_eq!(stopping.sender, main_pid);
    wait_gone(main_pid);
}

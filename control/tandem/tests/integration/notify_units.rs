//! The real `sd` and `hyper server run` under a test that plays systemd's side of `Type=notify`
//! (deploy/systemd/tandem-sd.service, tandem-hyper@.service): with `NOTIFY_SOCKET` naming the
//! test's socket, each says `READY=1` once it serves, `RELOADING=1` (with `MONOTONIC_USEC`) and
//! `READY=1` around a SIGHUP reload, and `STOPPING=1` on SIGTERM; each from its own pid (the unit's
//! main process). The proxy's side, with its binary upgrade, is in `proxy_upgrade_notify`.
#![allow(clippy::unwrap_used)]

use tandem_testkit::pki::TestPki;
use tandem_testkit::process::spawn;
use tandem_testkit::sd::OPS;

use crate::proxy_upgrade_notify::{manager_socket, receive, receive_until};
use crate::support::reload::{live_role, signal};
use crate::support::sd_process::SD;
use crate::support::seed::{HYPER, Layout};

#[test]
fn sd_under_a_notify_socket_says_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let role = live_role(dir.path(), &pki, "");
    let (manager, notify_path) = manager_socket(dir.path());
    let mut sd = spawn(
        "sd",
        SD,
        &["run"],
        &[
            ("SD_SETTINGS".into(), role.display().to_string()),
            ("NOTIFY_SOCKET".into(), notify_path),
        ],
    );
    let pid = sd.id() as i32;
    let addrs = sd.wait_for_addresses(&["sd listening"]);

    let (ready, before) = receive_until(&manager, "READY=1");
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    assert_eq!(ready.sender, pid);
    // Serving when it said so: the listener accepts.
    std::net::TcpStream::connect(addrs[0]).unwrap();

    signal(&sd, libc::SIGHUP);
    let reloading = receive(&manager);
    assert!(reloading.has("RELOADING=1"), "{reloading:?}");
    assert!(reloading.value("MONOTONIC_USEC").is_some(), "{reloading:?}");
    let reloaded = receive(&manager);
    assert!(reloaded.has("READY=1"), "{reloaded:?}");
    sd.wait_for("settings reloaded");

    signal(&sd, libc::SIGTERM);
    let status = sd.wait_exit(crate::support::proxy_process::STEP);
    assert_eq!(status.code(), Some(0), "{status:?}");
    // Sent before the exit: queued on the manager's socket.
    let stopping = receive(&manager);
    assert!(stopping.has("STOPPING=1"), "{stopping:?}");
    assert_eq!(stopping.sender, pid);
}

#[test]
fn hyper_under_a_notify_socket_says_ready_reloading_and_stopping() {
    let layout = Layout::new();
    let (manager, notify_path) = manager_socket(layout.root());
    let mut env = layout.env_with("HYPER_SETTINGS", "hd-1");
    env.push(("NOTIFY_SOCKET".into(), notify_path));
    // No sd runs: the server starts and serves all the same.
    let hyper = spawn("hyper", HYPER, &["server", "run"], &env);
    let pid = hyper.id() as i32;

    let (ready, before) = receive_until(&manager, "READY=1");
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    assert_eq!(ready.sender, pid);

    signal(&hyper, libc::SIGHUP);
    let reloading = receive(&manager);
    assert!(reloading.has("RELOADING=1"), "{reloading:?}");
    let reloaded = receive(&manager);
    assert!(reloaded.has("READY=1"), "{reloaded:?}");

    signal(&hyper, libc::SIGTERM);
    let stopping = receive(&manager);
    assert!(stopping.has("STOPPING=1"), "{stopping:?}");
    assert_eq!(stopping.sender, pid);
    assert!(hyper.terminate().success(), "hyper exits 0 on SIGTERM");
}

//! The real `proxy run public` with its role's `localhost:` listeners, in a network namespace
//! whose `/etc/hosts` names `localhost` as both `127.0.0.1` and `::1`: every listener binds both
//! families on one port (the engine's pairing and TLS ports on every core, the ControlService,
//! the JSON-RPC server), a pair's sides meet across the families, and a binary upgrade
//! (`proxy ctl upgrade`) hands every socket to the new process, which serves both families.
//! All traffic stays inside the namespace.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::os::fd::AsRawFd;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tandem_testkit::netns::Netns;

use crate::support::proxy_process::{HyperStub, STEP};
use crate::support::seed::{Layout, PROXY};
use crate::support::upgrade::{dial, ping_pong, with_long_ttl};

/// Runs `f` on a thread inside `ns` (its sockets are the namespace's), borrowing freely.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = std::path::Path::new("/var/run/netns").join(&ns.name);
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on a namespace file we opened; it changes only this thread's network.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// `proxy ctl <action>` inside `ns` against the ControlService at `host`.
fn ctl(ns: &Netns, layout: &Layout, host: &str, action: &[&str]) -> String {
    let mut args = layout.ctl_args();
    args[2] = format!("{host}:{}", layout.ports["TANDEM_TEST_PP_CONTROL_PORT"]);
    args.extend(action.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ns.run(PROXY, &args, &[])
}

/// A pair created through the ControlService at `ctl_host`, side A dialled over IPv4 and side B
/// over IPv6 on the pairing port; one message each way.
fn pair_across_families(ns: &Netns, layout: &Layout, ctl_host: &str) {
    let doc: serde_json::Value =
        serde_json::from_str(&ctl(ns, layout, ctl_host, &["pair", "create", "--json"])).unwrap();
    let token = |i: usize| STANDARD.decode(doc["tokens"][i].as_str().unwrap()).unwrap();
    let port = layout.ports["TANDEM_TEST_PP_INTERNAL_PORT"];
    in_ns(ns, || {
        let mut a = dial(&format!("127.0.0.1:{port}"), &token(0));
        let mut b = dial(&format!("[::1]:{port}"), &token(1));
        ping_pong(&mut a, &mut b);
    });
}

/// Every configured port accepts over both families.
fn every_port_on_both_families(ns: &Netns, layout: &Layout) {
    in_ns(ns, || {
        for var in [
            "TANDEM_TEST_PP_TLS_PORT",
            "TANDEM_TEST_PP_INTERNAL_PORT",
            "TANDEM_TEST_PP_JSONRPC_PORT",
            "TANDEM_TEST_PP_CONTROL_PORT",
        ] {
            for host in ["127.0.0.1", "[::1]"] {
                let addr = format!("{host}:{}", layout.ports[var]);
                let s = TcpStream::connect(&addr);
                assert!(s.is_ok(), "{var} on {addr}: {s:?}");
            }
        }
    });
}

#[test]
fn a_public_proxy_on_a_name_of_both_families_serves_and_upgrades_every_socket() {
    let layout = Layout::new();
    with_long_ttl(&layout);
    let ns = Netns::with_hosts(
        &format!("tdp-{}", std::process::id()),
        "127.0.0.1 localhost\n::1 localhost\n",
    );
    let _hyper = in_ns(&ns, || HyperStub::start(&layout));
    let mut proxy = ns.spawn(
        "proxy",
        PROXY,
        &["run", "public", "--upgrade-ready-within", "60"],
        &layout.env_with("PROXY_SETTINGS", "public-proxy-1"),
    );
    let started = proxy.wait_for("public proxy started");
    assert!(
        started.contains("pairing=127.0.0.1:"),
        "the primary address is IPv4: {started}"
    );
    assert!(
        started.contains("[::1]:"),
        "every address is logged: {started}"
    );
    every_port_on_both_families(&ns, &layout);
    pair_across_families(&ns, &layout, "127.0.0.1");
    pair_across_families(&ns, &layout, "[::1]");

    let out = ctl(&ns, &layout, "[::1]", &["upgrade"]);
    assert!(out.starts_with("upgraded: new pid "), "{out}");
    assert_eq!(
        proxy.wait_exit(STEP).code(),
        Some(0),
        "the old process exits 0"
    );
    // The new process serves every socket it inherited, on both families.
    every_port_on_both_families(&ns, &layout);
    pair_across_families(&ns, &layout, "127.0.0.1");
    pair_across_families(&ns, &layout, "[::1]");
    // Dropping the namespace kills the new process (it runs inside it).
}

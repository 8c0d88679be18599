//! The real `proxy run public` reloads without a restart, by `proxy ctl reload` and by SIGHUP:
//! the certificates, keys, CA bundles, control admins and log level are installed while a live
//! pair keeps relaying; a bad settings file changes nothing, and the ctl answer and the log say
//! which file and key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::proxy_process::{ProxyProc, create_pair, ctl};
use crate::support::seed::Layout;

/// `n` bytes from `from` arrive intact at `to`.
fn relays(from: &mut TcpStream, to: &mut TcpStream, n: usize, seed: u8) {
    let sent: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
    from.write_all(&sent).unwrap();
    let mut got = vec![0u8; n];
    to.read_exact(&mut got).unwrap();
    assert_eq!(got, sent, "the pair relays intact");
}

#[test]
fn ctl_reload_and_sighup_install_new_settings_and_a_bad_file_changes_nothing() {
    let layout = Layout::new();
    let mut proxy = ProxyProc::start(&layout);
    proxy.wait_for("public proxy started");
    let (mut a, mut b) = create_pair(&layout);
    relays(&mut a, &mut b, 4096, 1);

    let applied = ctl(&layout, &["reload"]).expect("proxy ctl reload");
    for key in [
        "public.jsonrpc_server.tls",
        "public.control.tls",
        "public.control.admins",
        "log_level",
    ] {
        assert!(applied.contains(key), "{key} applied: {applied}");
    }
    proxy.wait_for("settings reloaded");
    relays(&mut b, &mut a, 4096, 2);

    // A file with a key the settings do not have: refused, with the file and the key.
    let bad = layout.role("public-proxy-1").join("009_bad.yml");
    std::fs::write(&bad, "public:\n  jsonrpc_servr: {}\n").unwrap();
    let refused = ctl(&layout, &["reload"]).expect_err("a bad file is refused");
    assert!(refused.contains("nothing changed"), "{refused}");
    assert!(refused.contains("009_bad.yml"), "names the file: {refused}");
    assert!(
        refused.contains("jsonrpc_servr"),
        "names the key: {refused}"
    );
    let line = proxy.line("settings reload refused");
    assert!(line.contains("009_bad.yml"), "{line}");

    // SIGHUP with a log level that does not parse: refused and logged with the key.
    std::fs::write(&bad, "log_level: \"tandem=loud\"\n").unwrap();
    proxy.sighup();
    let line = proxy.line("settings reload refused");
    assert!(line.contains("log_level"), "{line}");
    assert!(line.contains("trigger=\"SIGHUP\""), "{line}");

    // Fixed: SIGHUP installs it; the pair has relayed through all of it.
    std::fs::remove_file(&bad).unwrap();
    proxy.sighup();
    proxy.wait_for("settings reloaded");
    relays(&mut a, &mut b, 65536, 3);
    relays(&mut b, &mut a, 65536, 4);
    let (stats, created) = (ctl(&layout, &["stats"]), ctl(&layout, &["pair", "create"]));
    assert!(
        stats.is_ok() && created.is_ok(),
        "the control service still serves"
    );
}

//! Real PROXY headers from HAProxy (`send-proxy-v2`, `send-proxy`) in front of the engine, on
//! both drivers: HAProxy connects to the engine from 127.0.0.9 (trusted) for a client on
//! 127.0.0.3; the pair relays and the SNI resolver sees 127.0.0.3, not HAProxy. The same HAProxy
//! connecting from 127.0.0.10 (not trusted) has its header refused and counted.
//!
//! HAProxy is installed by `scripts/install-deps.sh` (run here when it is missing). It binds no
//! port of its own: its frontends are listeners this test opened on port 0 and passed down
//! (`bind fd@N`), so no fixed port and no race for one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use abuse_support::*;
use tandem_engine::{ClientHelloInfo, Driver, EngineConfig, PairKind};
use tandem_types::ProxyProtocol;

abuse_both_drivers!(haproxy_headers_carry_the_client_from_a_trusted_source_only);

/// HAProxy's source address towards the engine: trusted, and not trusted.
const TRUSTED: &str = "127.0.0.9";
const UNTRUSTED: &str = "127.0.0.10";
/// The client's loopback host (127.0.0.`CLIENT`).
const CLIENT: u8 = 3;

/// The haproxy binary, installed by the project's script when missing.
fn haproxy() -> &'static str {
    let found = || Path::new("/usr/sbin/haproxy").exists();
    if !found() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-deps.sh");
        let status = Command::new("bash").arg(script).status().unwrap();
        assert!(status.success() && found(), "haproxy is not installed");
    }
    "/usr/sbin/haproxy"
}

/// A listener on 127.0.0.1:0 whose fd HAProxy inherits (close-on-exec cleared).
fn inherited_listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: fcntl on a descriptor this function owns; no memory is passed.
    let rc = unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
    assert_eq!(rc, 0);
    l
}

/// HAProxy with one frontend per `(listener, target, source, send-proxy option)`; killed on drop.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(routes: &[(&TcpListener, SocketAddr, &str, &str)]) -> Haproxy {
        let mut cfg = String::from(
            "global\n    maxconn 256\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
             timeout client 60s\n    timeout server 60s\n\n",
        );
        for (i, (listener, target, source, send)) in routes.iter().enumerate() {
            let fd = listener.as_raw_fd();
            cfg.push_str(&format!(
                "frontend fe{i}\n    bind fd@{fd}\n    default_backend be{i}\n\n\
                 backend be{i}\n    server s{i} {target} source {source} {send}\n\n"
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Haproxy { child, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn relays(a: &mut TcpStream, b: &mut TcpStream) {
    a.set_read_timeout(Some(STEP)).unwrap();
    b.set_read_timeout(Some(STEP)).unwrap();
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

fn haproxy_headers_carry_the_client_from_a_trusted_source_only(driver: Driver) {
    let seen: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let s = seen.clone();
    let resolver = move |_: &ClientHelloInfo, peer: SocketAddr| {
        s.lock().unwrap().push(peer);
        None
    };
    let trusted = vec![format!("{TRUSTED}/32").parse().unwrap()];
    let cfg = EngineConfig {
        tls_addr: Some("127.0.0.1:0".parse().unwrap()),
        token_deadline: STEP,
        hello_deadline: STEP,
        bad_token_limit: u32::MAX,
        proxy_protocol: Some(ProxyProtocol::new(trusted, STEP).unwrap()),
        ..config(driver)
    };
    let (h, _rx) = start_with(cfg, Arc::new(resolver));
    let addrs = h.local_addrs();
    let (v2, v1, tls, untrusted) = (
        inherited_listener(),
        inherited_listener(),
        inherited_listener(),
        inherited_listener(),
    );
    let _haproxy = Haproxy::start(&[
        (&v2, addrs.pairing, TRUSTED, "send-proxy-v2"),
        (&v1, addrs.pairing, TRUSTED, "send-proxy"),
        (&tls, addrs.tls.unwrap(), TRUSTED, "send-proxy-v2"),
        (&untrusted, addrs.pairing, UNTRUSTED, "send-proxy-v2"),
    ]);
    let front = |l: &TcpListener| l.local_addr().unwrap();

    // v2 and v1 headers: the pair's two sides arrive through HAProxy and relay.
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = send_from(CLIENT, front(&v2), t.side_a.as_bytes());
    let mut b = send_from(CLIENT, front(&v1), t.side_b.as_bytes());
    relays(&mut a, &mut b);
    assert_eq!(total(&h, |s| s.proxy_headers), 2);

    // A ClientHello through HAProxy: the resolver sees the client, not HAProxy.
    let mut c = send_from(
        CLIENT,
        front(&tls),
        &client_hello("a.internal-server.local"),
    );
    closed_within(&mut c, STEP);
    let peers = seen.lock().unwrap().clone();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].ip(), c.local_addr().unwrap().ip());
    assert_eq!(peers[0].port(), c.local_addr().unwrap().port());

    // From an untrusted source, the same header is a bad connection.
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut d = send_from(CLIENT, front(&untrusted), t.side_a.as_bytes());
    closed_within(&mut d, STEP);
    eventually("the untrusted header counted", || {
        total(&h, |s| s.proxy_untrusted) == 1
    });
    assert_eq!(total(&h, |s| s.proxy_headers), 3);
}

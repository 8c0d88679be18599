//! The real `proxy run public` with the test role as a child process (for the drain and flood
//! tests, `proxy_drain.rs` and `proxy_flood.rs`) whose pid we signal and whose memory we read, a
//! stand-in for its Hyper node, and `proxy ctl` calls against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::support::seed::{Layout, PROXY, spawn};
use tandem_testkit::process::Proc;

/// Upper bound for a start-up or a blocking step, so a hang fails the test.
pub const STEP: Duration = Duration::from_secs(60);

/// The proxy child: killed on drop, with its stderr lines.
pub struct ProxyProc {
    proc: Proc,
    _hyper: HyperStub,
}

/// Stands in for the proxy's Hyper node, which these tests do not run: a TLS JSON-RPC server on
/// the test role's Hyper gateway port (the proxy's `jsonrpc_client` endpoint) that answers
/// `public-proxy-1.ga._directory` with an empty directory. The proxy's admin check reads the
/// directory's pins through it; with no entry for `demo-app`, its CA-verified name admits it.
pub struct HyperStub {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct EmptyDirectory;

impl tandem_net::http::Methods for EmptyDirectory {
    async fn call(
        &self,
        request: tandem_net::jsonrpc::Request,
        _peer: tandem_net::http::PeerInfo,
    ) -> Result<serde_json::Value, tandem_net::jsonrpc::ErrorObject> {
        match request.method.as_str() {
            "public-proxy-1.ga._directory" => Ok(serde_json::json!({"entries": []})),
            _ => Err(tandem_net::jsonrpc::ErrorObject::new(
                -32601,
                "method not found",
            )),
        }
    }
}

impl HyperStub {
    pub fn start(layout: &Layout) -> Self {
        use tandem_net::http::{RouteConfig, ServerLimits, jsonrpc_router, serve};
        let certs = layout.root().join("certs");
        let tls = tandem_settings::TlsSettings {
            ca_certificate_files: vec![certs.join("root.crt")],
            certificate_file: Some(certs.join("public-proxy-1.ga.crt")),
            key_file: Some(certs.join("public-proxy-1.ga.key")),
            server_name: None,
            verify_client: true,
            request_client_cert: false,
            insecure_skip_verify: false,
        };
        let tls = tandem_net::tls::server_config(&tls, &[b"h2", b"http/1.1"]).unwrap();
        let port = layout.ports["TANDEM_TEST_PPH_JSONRPC_PORT"];
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let route = RouteConfig {
                    body_timeout: tandem_serving::DEFAULT_BODY_TIMEOUT,
                    path: "/jsonrpc".into(),
                    max_body_bytes: 1 << 20,
                    rate_limits: Vec::new(),
                    call_timeout: STEP,
                    cors: None,
                };
                let router = jsonrpc_router(std::sync::Arc::new(EmptyDirectory), route);
                serve(
                    listener,
                    Some(tls.into()),
                    router,
                    ServerLimits::default(),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            });
        });
        HyperStub {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for HyperStub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ProxyProc {
    pub fn start(layout: &Layout) -> Self {
        let hyper = HyperStub::start(layout);
        let proc = spawn(
            "proxy",
            PROXY,
            &["run", "public"],
            &layout.env_with("PROXY_SETTINGS", "public-proxy-1"),
        );
        ProxyProc {
            proc,
            _hyper: hyper,
        }
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) {
        self.proc.wait_for(needle);
    }

    pub fn sigterm(&self) {
        self.proc.sigterm();
    }

    /// Sends SIGHUP (reload).
    pub fn sighup(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.proc.id() as i32, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill(SIGHUP)");
    }

    /// Waits (bounded) for a log line containing `needle` and returns it.
    pub fn line(&mut self, needle: &str) -> String {
        self.proc.wait_for(needle)
    }

    /// Waits (bounded) for the exit status, draining stderr so the child never blocks on it.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.proc.wait_exit(limit)
    }
}

/// `proxy ctl <action>` against the test proxy; stdout on success, stderr on failure.
pub fn ctl(layout: &Layout, action: &[&str]) -> Result<String, String> {
    let mut args = layout.ctl_args();
    args.extend(action.iter().map(|s| s.to_string()));
    let out = Command::new(Path::new(PROXY)).args(&args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `pair create --json`: the endpoint and both sides connected with their tokens.
pub fn create_pair(layout: &Layout) -> (TcpStream, TcpStream) {
    let text = ctl(layout, &["pair", "create", "--json"]).expect("pair create");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let endpoint = doc["endpoint"].as_str().unwrap();
    let dial = |token: &serde_json::Value| {
        let token = STANDARD.decode(token.as_str().unwrap()).unwrap();
        let mut s = TcpStream::connect(endpoint).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        s.write_all(&token).unwrap();
        s
    };
    (dial(&doc["tokens"][0]), dial(&doc["tokens"][1]))
}

/// The resident set size of the proxy process, in KiB (`VmRSS` of /proc/<pid>/status).
impl ProxyProc {
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS of the proxy")
    }
}

/// Reads to EOF; returns the sha256 and the byte count.
pub fn receive(mut s: TcpStream) -> ([u8; 32], u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            return (h.finalize().into(), n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// Writes `n` seeded pseudo-random bytes, shuts down writing, returns their sha256.
pub fn send_seeded(mut s: TcpStream, n: u64, seed: u64) -> [u8; 32] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..k]);
        s.write_all(&buf[..k]).unwrap();
        h.update(&buf[..k]);
        left -= k as u64;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    h.finalize().into()
}

//! The fleet test bed: a proxy operator (`public-proxy-1.ga`) as three nodes, each a `proxy` plus
//! its Hyper node in a network namespace of its own, on a private LAN ([`tandem_testkit::netns::Lan`]:
//! a bridge in a namespace of its own, nothing reachable from the host). Beside them: Redis
//! primary + replica + three Sentinels, two `sd` instances on that Redis (through Sentinel), hd-1
//! and hd-2 (hd-2 reachable only through the proxy: its gRPC server listens on its loopback only).
//! Every process runs in its own namespace with the repository's test roles, moved to the LAN.
//! Dropping the bed kills everything and deletes every namespace.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tandem_net::http::JsonRpcClient;
use tandem_settings::TlsSettings;
use tandem_testkit::netns::{Lan, Netns};

use super::fleet_layout::{layout, sd_setup};
use super::fleet_redis::start_redis;
use super::seed::{HYPER, PROXY, Proc, SD};

/// The namespace prefix of this bed (namespaces are `<prefix><pid>-<host>`).
pub const PREFIX: &str = "tdfleet";
/// Proxy nodes of the operator.
pub const NODES: usize = 3;

// Fixed ports: every host has a network of its own.
pub const SD_PORT: u16 = 3322;
pub const REDIS_PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
/// The Sentinels' name for the primary (`master_name` in sd's settings).
pub const MASTER_NAME: &str = "fleet";

pub fn ports() -> Vec<(String, String)> {
    [
        ("TANDEM_TEST_SD_PORT", SD_PORT),
        ("TANDEM_TEST_HD1_GRPC_PORT", 8888),
        ("TANDEM_TEST_HD1_JSONRPC_PORT", 5555),
        ("TANDEM_TEST_HD2_GRPC_PORT", 8888),
        ("TANDEM_TEST_HD2_JSONRPC_PORT", 5555),
        ("TANDEM_TEST_PPH_GRPC_PORT", 5556),
        ("TANDEM_TEST_PPH_JSONRPC_PORT", 5544),
        ("TANDEM_TEST_PP_TLS_PORT", 4433),
        ("TANDEM_TEST_PP_INTERNAL_PORT", 9999),
        ("TANDEM_TEST_PP_JSONRPC_PORT", 6655),
        ("TANDEM_TEST_PP_CONTROL_PORT", 6656),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_string()))
    .collect()
}

/// Host indices on the LAN, in the order they are added.
pub mod host {
    pub const REDIS_PRIMARY: usize = 0;
    pub const REDIS_REPLICA: usize = 1;
    pub const SENTINELS: [usize; 3] = [2, 3, 4];
    pub const SD: [usize; 2] = [5, 6];
    pub const NODES: [usize; 3] = [7, 8, 9];
    pub const HD1: usize = 10;
    pub const HD2: usize = 11;
    /// The private proxy `private-proxy-1.ga` and its Hyper node (announcement test only).
    pub const PRIVATE: usize = 12;
    pub const NAMES: [&str; 13] = [
        "r1", "r2", "s1", "s2", "s3", "sd1", "sd2", "p1", "p2", "p3", "hd1", "hd2", "pv",
    ];
}

/// One proxy node: the public proxy and its Hyper node.
pub struct Node {
    pub proxy: Option<Proc>,
    pub hyper: Option<Proc>,
}

/// The running fleet (see the module docs). Processes drop before the LAN, the LAN before the files.
pub struct Bed {
    /// The private proxy and its Hyper node, when started ([`Bed::start_private`]).
    pub private: Vec<Proc>,
    pub nodes: Vec<Node>,
    pub hd1: Proc,
    pub hd2: Proc,
    pub sds: Vec<Proc>,
    pub redis: Vec<Option<Proc>>,
    pub sentinels: Vec<Proc>,
    pub lan: Lan,
    pub dir: tempfile::TempDir,
}

impl Bed {
    /// Builds and starts the whole fleet; returns once hd-2's reverse stream is open on every node
    /// and hd-1 runs.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut lan = Lan::new(PREFIX);
        for name in host::NAMES {
            lan.add_host(name);
        }
        layout(dir.path(), &lan);

        let (redis, sentinels) = start_redis(dir.path(), &lan);
        let root = dir.path().to_path_buf();
        let env = |role: &str, var: &str| {
            let mut env = ports();
            env.push((
                var.into(),
                root.join("roles").join(role).display().to_string(),
            ));
            env
        };
        let mut sd1 =
            lan.host(host::SD[0])
                .ns
                .spawn("sd-a", SD, &["run"], &env("sd-a", "SD_SETTINGS"));
        sd1.wait_for("sd listening");
        sd_setup(&root, &lan.host(host::HD1).ns);
        // The second instance opens the store after the set-up: it reads every record at open.
        let mut sd2 =
            lan.host(host::SD[1])
                .ns
                .spawn("sd-b", SD, &["run"], &env("sd-b", "SD_SETTINGS"));
        sd2.wait_for("sd listening");

        let mut nodes = Vec::new();
        for n in 0..NODES {
            let ns = &lan.host(host::NODES[n]).ns;
            let mut proxy = ns.spawn(
                node_name(n, "proxy"),
                PROXY,
                &["run", "public"],
                &env(&format!("pp-{}", n + 1), "PROXY_SETTINGS"),
            );
            proxy.wait_for("public proxy started");
            let mut hyper = ns.spawn(
                node_name(n, "hyper"),
                HYPER,
                &["server", "run"],
                &env(&format!("pph-{}", n + 1), "HYPER_SETTINGS"),
            );
            hyper.wait_for("hyper server running");
            nodes.push(Node {
                proxy: Some(proxy),
                hyper: Some(hyper),
            });
        }
        let mut hd2 = lan.host(host::HD2).ns.spawn(
            "hd-2",
            HYPER,
            &["server", "run"],
            &env("hd-2", "HYPER_SETTINGS"),
        );
        hd2.wait_for("hyper server running");
        for node in &mut nodes {
            node.hyper
                .as_mut()
                .unwrap()
                .wait_for("reverse stream opened operator=hd-2");
        }
        let mut hd1 = lan.host(host::HD1).ns.spawn(
            "hd-1",
            HYPER,
            &["server", "run"],
            &env("hd-1", "HYPER_SETTINGS"),
        );
        hd1.wait_for("hyper server running");
        Self {
            private: Vec::new(),
            nodes,
            hd1,
            hd2,
            sds: vec![sd1, sd2],
            redis,
            sentinels,
            lan,
            dir,
        }
    }

    /// Starts `private-proxy-1.ga` (the private proxy and its Hyper node, the dev roles moved to
    /// the LAN) and waits until its Hyper node runs.
    pub fn start_private(&mut self) {
        let ns = &self.lan.host(host::PRIVATE).ns;
        let env = |role: &str, var: &str| {
            vec![(
                var.to_owned(),
                self.root().join("roles").join(role).display().to_string(),
            )]
        };
        let mut proxy = ns.spawn(
            "private proxy",
            PROXY,
            &["run", "private"],
            &env("pv-proxy", "PROXY_SETTINGS"),
        );
        proxy.wait_for("private proxy started");
        let mut hyper = ns.spawn(
            "private proxy hyper",
            HYPER,
            &["server", "run"],
            &env("pv-hyper", "HYPER_SETTINGS"),
        );
        hyper.wait_for("hyper server running");
        self.private = vec![hyper, proxy];
    }

    /// The LAN address of host `index`.
    pub fn addr(&self, index: usize) -> Ipv4Addr {
        self.lan.host(index).addr
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Node `n`'s namespace.
    pub fn node_ns(&self, n: usize) -> &Netns {
        &self.lan.host(host::NODES[n]).ns
    }

    /// Runs `f` (async) on a runtime inside hd-1's namespace, where its gateway listens.
    pub fn in_hd1<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(JsonRpcClient) -> F + Send + 'static,
    ) -> T
    where
        F: std::future::Future<Output = T>,
    {
        self.spawn_in_hd1(f).join().unwrap()
    }

    /// Starts `f` (async) on a runtime inside hd-1's namespace; join the handle for its result.
    pub fn spawn_in_hd1<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(JsonRpcClient) -> F + Send + 'static,
    ) -> std::thread::JoinHandle<T>
    where
        F: std::future::Future<Output = T>,
    {
        let app = self.gateway_settings();
        self.lan.host(host::HD1).ns.enter_thread(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move { f(gateway(&app)).await })
        })
    }

    fn gateway_settings(&self) -> PathBuf {
        self.root().join("certs")
    }

    /// `proxy ctl stats --json` of node `n` (inside its namespace): the engine's per-core counters.
    pub fn node_stats(&self, n: usize) -> Value {
        let certs = self.root().join("certs");
        let out = self.node_ns(n).run(
            PROXY,
            &[
                "ctl",
                "--addr",
                "127.0.0.1:6656",
                "--server-name",
                "public-proxy-1.ga",
                "--cert",
                certs.join("demo-app.crt").to_str().unwrap(),
                "--key",
                certs.join("demo-app.key").to_str().unwrap(),
                "--ca",
                certs.join("root.crt").to_str().unwrap(),
                "stats",
                "--json",
            ],
            &[],
        );
        serde_json::from_str(&out).unwrap()
    }

    /// Kills node `n` with SIGKILL (both processes: a crashed machine) and reaps them.
    pub fn kill_node(&mut self, n: usize) {
        self.node_ns(n).kill_all();
        let node = &mut self.nodes[n];
        for proc in [node.proxy.take(), node.hyper.take()].into_iter().flatten() {
            let mut proc = proc;
            proc.kill();
        }
    }

    /// `redis-cli` against a LAN host's port, run inside that host's namespace.
    pub fn redis_cli(&self, host: usize, port: u16, args: &[&str]) -> String {
        let h = self.lan.host(host);
        let addr = h.addr.to_string();
        let port = port.to_string();
        let mut all = vec!["-h", addr.as_str(), "-p", port.as_str()];
        all.extend_from_slice(args);
        h.ns.run("redis-cli", &all, &[])
    }

    /// The primary's address as the first Sentinel names it.
    pub fn sentinel_primary(&self) -> Option<Ipv4Addr> {
        let out = self.redis_cli(
            host::SENTINELS[0],
            SENTINEL_PORT,
            &["sentinel", "get-master-addr-by-name", MASTER_NAME],
        );
        out.lines().next()?.trim().parse().ok()
    }

    /// Kills the Redis primary with SIGKILL.
    pub fn kill_redis_primary(&mut self) {
        self.lan.host(host::REDIS_PRIMARY).ns.kill_all();
        if let Some(mut primary) = self.redis[0].take() {
            primary.kill();
        }
    }

    /// Submits `records` (a `{"records": [...]}` file's content) through sd-a, signed by hd-1, from
    /// hd-1's namespace; the tool's success means sd acknowledged them.
    pub fn submit_records(&self, name: &str, records: &Value) -> Result<(), String> {
        let file = self.root().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(records).unwrap()).unwrap();
        let mut env = ports();
        env.push((
            "HYPER_SETTINGS".into(),
            self.root().join("roles/hd-1").display().to_string(),
        ));
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.lan.host(host::HD1).ns.name, HYPER])
            .args(["sd", "submit-records", file.to_str().unwrap()])
            .envs(env)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

fn node_name(n: usize, what: &str) -> &'static str {
    const NAMES: [[&str; 2]; NODES] = [
        ["node-1 proxy", "node-1 hyper"],
        ["node-2 proxy", "node-2 hyper"],
        ["node-3 proxy", "node-3 hyper"],
    ];
    NAMES[n][usize::from(what == "hyper")]
}

/// A local app's client of hd-1's gateway (certificates under `certs`).
fn gateway(certs: &Path) -> JsonRpcClient {
    let tls = TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join("hd-1.crt")),
        key_file: Some(certs.join("hd-1.key")),
        server_name: Some("hd-1".into()),
        verify_client: true,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    let config = tandem_net::tls::client_config(&tls, &[]).unwrap();
    JsonRpcClient::new(
        "https://127.0.0.1:5555/jsonrpc",
        Some(config),
        Some("hd-1"),
        Duration::from_secs(30),
    )
    .unwrap()
}

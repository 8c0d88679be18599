//! The fleet test bed: a proxy operator (`public-proxy-1.ga`) as three nodes, each a `proxy` plus
//! its Hyper node in a network namespace of its own, on a private LAN ([`tandem_testkit::netns::Lan`]:
//! a bridge in a namespace of its own, nothing reachable from the host). Beside them: Redis
//! primary + replica + three Sentinels, two `sd` instances on that Redis (through Sentinel), hd-1
//! and hd-2 (hd-2 reachable only through the proxy: its gRPC server listens on its loopback only).
//! Every process runs in its own namespace with the repository's test roles, moved to the LAN.
//! Dropping the bed kills everything and deletes every namespace.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tandem_net::http::JsonRpcClient;
use tandem_settings::TlsSettings;
use tandem_testkit::netns::{Lan, Netns};
use tandem_testkit::poll::{POLL_BOUND, until_blocking};

use super::seed::{HYPER, PROXY, Proc, SD, copy_dir, repo, run};

/// The namespace prefix of this bed (namespaces are `<prefix><pid>-<host>`).
pub const PREFIX: &str = "tdfleet";
/// Proxy nodes of the operator.
pub const NODES: usize = 3;

// Fixed ports: every host has a network of its own.
const SD_PORT: u16 = 3322;
const REDIS_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
/// The Sentinels' name for the primary (`master_name` in sd's settings).
pub const MASTER_NAME: &str = "fleet";

fn ports() -> Vec<(String, String)> {
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

/// Certificates, role settings moved to the LAN, and the directory content with the operator's
/// three nodes.
fn layout(root: &Path, lan: &Lan) {
    let ip = |i: usize| lan.host(i).addr.to_string();
    run(
        Path::new(HYPER),
        &[
            "certs",
            "--certs-dir",
            root.join("certs").to_str().unwrap(),
            "--directory-dir",
            root.join("directory").to_str().unwrap(),
        ],
        &[],
    );
    let test_roles = repo().join("settings/test/roles");
    let role = |from: &str, to: &str, edits: &[(&str, String)]| {
        let dir = root.join("roles").join(to);
        copy_dir(&test_roles.join(from), &dir);
        let file = dir.join("001_default.yml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{to}: {from:?} not in the test role");
            text = text.replace(from, to);
        }
        std::fs::write(file, text).unwrap();
    };
    let sd_url = |sd: usize| {
        (
            "https://localhost:$SD_PORT",
            format!("https://{}:$SD_PORT", ip(host::SD[sd])),
        )
    };
    role("hd-1", "hd-1", &[sd_url(0)]);
    role("hd-2", "hd-2", &[sd_url(1)]);
    for n in 0..NODES {
        let node_ip = ip(host::NODES[n]);
        role(
            "public-proxy-1",
            &format!("pp-{}", n + 1),
            &[
                (
                    "tls_bind_address: \"localhost",
                    "tls_bind_address: \"0.0.0.0".into(),
                ),
                (
                    "internal_bind_address: \"localhost",
                    "internal_bind_address: \"0.0.0.0".into(),
                ),
                (
                    "internal_endpoint: \"localhost",
                    format!("internal_endpoint: \"{node_ip}"),
                ),
                ("public-proxy-1.records", format!("pp-{}.records", n + 1)),
            ],
        );
        role(
            "public-proxy-hyper-1",
            &format!("pph-{}", n + 1),
            &[
                sd_url(n % 2),
                (
                    "bind_address: \"localhost:$GRPC_PORT\"",
                    "bind_address: \"0.0.0.0:$GRPC_PORT\"".into(),
                ),
            ],
        );
    }
    let sentinels: Vec<String> = host::SENTINELS
        .iter()
        .map(|&s| format!("\"{}:{SENTINEL_PORT}\"", ip(s)))
        .collect();
    for sd in ["sd-a", "sd-b"] {
        role(
            "sd-1",
            sd,
            &[
                (
                    "bind_address: \"localhost:$SD_PORT\"",
                    "bind_address: \"0.0.0.0:$SD_PORT\"".into(),
                ),
                (
                    "    type: file # the embedded append-only store (see sd-1-redis for Redis)\n    settings:\n      filename: \"/$DIR/../../data/sd-1.records\"",
                    format!(
                        "    type: redis\n    settings:\n      addresses: [{}]\n      master_name: {MASTER_NAME}\n      key: fleet-entries\n      database: 0\n      password: \"\"",
                        sentinels.join(", ")
                    ),
                ),
            ],
        );
    }
    let dev_roles = repo().join("settings/dev/roles");
    let dev_role = |from: &str, to: &str, edits: &[(&str, String)]| {
        let dir = root.join("roles").join(to);
        copy_dir(&dev_roles.join(from), &dir);
        let file = dir.join("001_default.yml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{to}: {from:?} not in the dev role");
            text = text.replace(from, to);
        }
        std::fs::write(file, text).unwrap();
    };
    dev_role("private-proxy-1", "pv-proxy", &[]);
    dev_role(
        "private-proxy-hyper-1",
        "pv-hyper",
        &[
            (
                "https://localhost:3322",
                format!("https://{}:{SD_PORT}", ip(host::SD[0])),
            ),
            (
                "bind_address: \"localhost:7776\"",
                "bind_address: \"0.0.0.0:7776\"".into(),
            ),
        ],
    );
    directory(root, lan);
}

/// The dev directory content with `public-proxy-1.ga` as three nodes: a `grpc_server` channel and
/// a pairing endpoint per node.
fn directory(root: &Path, lan: &Lan) {
    let text =
        std::fs::read_to_string(repo().join("settings/dev/directory/default/001_default.json"))
            .unwrap();
    let mut content: Value = serde_json::from_str(&text).unwrap();
    let records = content["records"].as_array_mut().unwrap();
    let proxy = records
        .iter_mut()
        .find(|r| r["name"] == "public-proxy-1.ga" && r["section"] == "channels")
        .unwrap();
    let ips: Vec<String> = host::NODES
        .iter()
        .map(|&n| lan.host(n).addr.to_string())
        .collect();
    let mut channels: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"type": "grpc_server", "settings": {"address": format!("{ip}:5556")}}))
        .collect();
    channels.push(json!({"type": "grpc_client", "settings": {}}));
    channels.push(json!({"type": "proxy", "settings": {
        "endpoints": ips.iter().map(|ip| format!("{ip}:9999")).collect::<Vec<_>>()
    }}));
    proxy["data"] = Value::Array(channels);
    let private = records
        .iter_mut()
        .find(|r| r["name"] == "private-proxy-1.ga" && r["section"] == "channels")
        .unwrap();
    let private_ip = lan.host(host::PRIVATE).addr;
    private["data"] = json!([
        {"type": "grpc_client", "settings": {}},
        {"type": "grpc_server", "settings": {"address": format!("{private_ip}:7776")}},
    ]);
    std::fs::create_dir_all(root.join("directory/default")).unwrap();
    std::fs::write(
        root.join("directory/default/001_default.json"),
        serde_json::to_vec_pretty(&content).unwrap(),
    )
    .unwrap();
}

/// Loads the certificate records (a new chain) and the directory content through sd-a, signed by
/// hd-1, from hd-1's namespace.
fn sd_setup(root: &Path, ns: &Netns) {
    let bin_dir = Path::new(HYPER).parent().unwrap().display().to_string();
    for (dir, reset) in [
        (root.join("directory"), Some("--reset")),
        (root.join("directory/default"), None),
    ] {
        let mut env = ports();
        env.push(("BIN_DIR".into(), bin_dir.clone()));
        env.push((
            "SIGNER".into(),
            root.join("roles/hd-1").display().to_string(),
        ));
        let script = repo().join("scripts/sd-setup.sh");
        let mut args = vec![dir.to_str().unwrap()];
        args.extend(reset);
        ns.run(script.to_str().unwrap(), &args, &env);
    }
}

/// Waits (bounded) until `addr` accepts TCP connections, from inside `ns`.
fn wait_listening(ns: &Netns, what: &'static str, addr: SocketAddr) {
    ns.enter(move || {
        until_blocking(what, POLL_BOUND, || TcpStream::connect(addr).ok());
    });
}

/// Redis primary and replica (AOF, `appendfsync always`) and three Sentinels watching them; returns
/// once the replica is in sync and every Sentinel knows the primary.
fn start_redis(root: &Path, lan: &Lan) -> (Vec<Option<Proc>>, Vec<Proc>) {
    let primary_ip = lan.host(host::REDIS_PRIMARY).addr;
    let mut redis = Vec::new();
    for (i, &h) in [host::REDIS_PRIMARY, host::REDIS_REPLICA]
        .iter()
        .enumerate()
    {
        let data = root.join(format!("redis-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let port = REDIS_PORT.to_string();
        let mut args = vec![
            "--port",
            port.as_str(),
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            data.to_str().unwrap(),
        ];
        let primary = primary_ip.to_string();
        if i == 1 {
            args.extend(["--replicaof", primary.as_str(), port.as_str()]);
        }
        let name = ["redis-primary", "redis-replica"][i];
        let proc = lan.host(h).ns.spawn(name, "redis-server", &args, &[]);
        wait_listening(
            &lan.host(h).ns,
            name,
            SocketAddr::from((lan.host(h).addr, REDIS_PORT)),
        );
        redis.push(Some(proc));
    }
    let mut sentinels = Vec::new();
    for (i, &h) in host::SENTINELS.iter().enumerate() {
        let conf = root.join(format!("sentinel-{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {SENTINEL_PORT}\nbind 0.0.0.0\nprotected-mode no\ndir {}\n\
                 sentinel monitor {MASTER_NAME} {primary_ip} {REDIS_PORT} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                root.display()
            ),
        )
        .unwrap();
        let name = ["sentinel-1", "sentinel-2", "sentinel-3"][i];
        let proc = lan.host(h).ns.spawn(
            name,
            "redis-server",
            &[conf.to_str().unwrap(), "--sentinel"],
            &[],
        );
        wait_listening(
            &lan.host(h).ns,
            name,
            SocketAddr::from((lan.host(h).addr, SENTINEL_PORT)),
        );
        sentinels.push(proc);
    }
    // The replica is in sync before anything is written.
    let replica = lan.host(host::REDIS_REPLICA);
    let replica_addr = replica.addr.to_string();
    until_blocking("the replica syncs", POLL_BOUND, || {
        let out = replica.ns.run(
            "redis-cli",
            &["-h", &replica_addr, "-p", "6379", "info", "replication"],
            &[],
        );
        out.contains("master_link_status:up").then_some(())
    });
    (redis, sentinels)
}

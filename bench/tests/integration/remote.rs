//! `--target ADDR`: a real public proxy (engine + ControlService over mTLS, started in this
//! process on 127.0.0.1:0) driven by the harness through ControlService. Throughput checks every
//! byte; setup-rate with one `CreatePair` call per pair completes and is labelled as such; a
//! non-admin certificate is refused. No speed is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use tandem_bench::cli::Cli;
use tandem_bench::report::{Figures, Report};
use tandem_bench::target::System;
use tandem_bench::workload::PairCreation;
use tandem_bench::{runner, table};
use tandem_proxy::PublicProxy;
use tandem_proxy::settings::PublicProxySettings;
use tandem_proxy::settings::{ControlSettings, ProxyClientSettings, ProxyEngineSettings};
use tandem_settings::datastore::{DatastoreSettings, FileDatastoreSettings};
use tandem_settings::listeners::{HostPort, JsonRpcServerSettings};
use tandem_testkit::pki::TestPki;
use tokio::sync::oneshot;

const PROXY: &str = "public-proxy-1.ga";
const ADMIN: &str = "demo-app";
const OTHER: &str = "hd-2";
/// Bound on the proxy's start and stop.
const STEP: Duration = Duration::from_secs(30);

fn local() -> HostPort {
    HostPort {
        host: "127.0.0.1".into(),
        port: 0,
    }
}

fn settings(pki: &TestPki, dir: &Path, hyper: SocketAddr) -> PublicProxySettings {
    let mut engine = ProxyEngineSettings::default();
    engine.config.cores = Some(vec![0, 1]);
    engine.config.pin = false;
    engine.drain_grace = Duration::from_millis(200);
    PublicProxySettings {
        name: PROXY.into(),
        tls_bind_address: local(),
        internal_bind_address: local(),
        internal_endpoint: None,
        accept_timeout: Duration::from_secs(10),
        tcp_rate_limits: Vec::new(),
        datastore: DatastoreSettings::File(FileDatastoreSettings {
            filename: dir.join("public.records"),
        }),
        // Only the admin check's directory read reaches it (nothing is announced here).
        jsonrpc_client: ProxyClientSettings {
            endpoint: format!("http://{hyper}/jsonrpc"),
            tls: None,
            proxy_url: None,
        },
        jsonrpc_server: JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: local(),
            path: "/jsonrpc".into(),
            cors: None,
            tls: Some(pki.tls_settings(PROXY)),
            tcp_rate_limits: Vec::new(),
        },
        call_timeout: Duration::from_secs(5),
        engine,
        control: Some(ControlSettings {
            serving: Default::default(),
            bind_address: local(),
            tls: pki.tls_settings(PROXY),
            admins: vec![ADMIN.into()],
        }),
        announcements: Default::default(),
        access_log: None,
        quotas: Default::default(),
    }
}

/// Answers `<PROXY>._directory`.
struct EmptyDirectory;

impl tandem_net::http::Methods for EmptyDirectory {
    async fn call(
        &self,
        request: tandem_net::jsonrpc::Request,
        _peer: tandem_net::http::PeerInfo,
    ) -> Result<serde_json::Value, tandem_net::jsonrpc::ErrorObject> {
        if request.method == format!("{PROXY}._directory") {
            Ok(serde_json::json!({"entries": []}))
        } else {
            Err(tandem_net::jsonrpc::ErrorObject::new(
                -32601,
                "method not found",
            ))
        }
    }
}

/// Stands in for the proxy's Hyper node (plain HTTP on 127.0.0.1:0, served until the runtime
/// stops): its directory has no entry, so the admin check admits the CA-verified admin name.
async fn empty_directory_node() -> SocketAddr {
    use tandem_net::http::{RouteConfig, ServerLimits, jsonrpc_router, serve};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let route = RouteConfig {
        path: "/jsonrpc".into(),
        max_body_bytes: 1 << 20,
        rate_limits: Vec::new(),
        call_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        cors: None,
    };
    let router = jsonrpc_router(std::sync::Arc::new(EmptyDirectory), route);
    tokio::spawn(serve(
        listener,
        None,
        router,
        ServerLimits::default(),
        std::future::pending(),
    ));
    addr
}

/// A public proxy serving on its own runtime until dropped.
struct Running {
    runtime: tokio::runtime::Runtime,
    control: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn start(pki: &TestPki, dir: &Path) -> Running {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hyper = runtime.block_on(empty_directory_node());
        let s = settings(pki, dir, hyper);
        let proxy = runtime.block_on(async {
            let jsonrpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tokio::time::timeout(STEP, PublicProxy::start(&s, jsonrpc))
                .await
                .expect("proxy starts in time")
                .unwrap()
        });
        let control = proxy.handle().control_addr().expect("control block set");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            proxy
                .serve(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Running {
            runtime,
            control,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let done = self
                .runtime
                .block_on(async { tokio::time::timeout(STEP, t).await });
            if !std::thread::panicking() {
                done.expect("proxy stops in time").unwrap();
            }
        }
    }
}

fn run(pki: &TestPki, proxy: &Running, admin: &str, args: &[&str]) -> Report {
    let (addr, cert, key, ca) = (
        proxy.control.to_string(),
        pki.cert(admin).display().to_string(),
        pki.key(admin).display().to_string(),
        pki.root_cert().display().to_string(),
    );
    let mut argv = vec![
        "tandem-bench",
        "--target",
        &addr,
        "--admin-cert",
        &cert,
        "--admin-key",
        &key,
        "--ca",
        &ca,
        "--server-name",
        PROXY,
        "--systems",
        "tandem-proxy",
        "--no-progress",
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    let plan = runner::plan(&cli).expect("plan");
    runner::execute(&plan, true).expect("run")
}

#[test]
fn throughput_and_setup_rate_through_a_running_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), &[PROXY, ADMIN, OTHER]).unwrap();
    let proxy = Running::start(&pki, dir.path());

    let r = run(
        &pki,
        &proxy,
        ADMIN,
        &["throughput", "--pairs", "4", "--bytes", "1048576"],
    );
    assert_eq!(r.runs.len(), 1);
    let run0 = &r.runs[0];
    assert_eq!(
        (run0.system, run0.scenario.as_str()),
        (System::TandemProxy, "throughput-4")
    );
    let Figures::Throughput(t) = &run0.figures else {
        panic!("throughput figures: {:?}", run0.figures);
    };
    assert_eq!(t.corrupt_streams, 0, "every relayed byte matches");
    assert_eq!(
        t.verified_streams, 8,
        "both directions of 4 pairs: {:?}",
        t.first_error
    );
    assert_eq!((t.pairs, t.bytes_each_way), (4, 1_048_576));
    assert!(t.gbit_per_s > 0.0);
    assert!(t.path.as_deref().unwrap_or("").contains("ControlService"));

    let r = run(
        &pki,
        &proxy,
        ADMIN,
        &[
            "setup-rate",
            "--threads",
            "4",
            "--ops",
            "100",
            "--setup-seconds",
            "20",
            "--source-addrs",
            "2",
        ],
    );
    let run0 = &r.runs[0];
    assert_eq!(
        run0.scenario, "setup-rate-control",
        "labelled as one call per pair"
    );
    let Figures::SetupRate(s) = &run0.figures else {
        panic!("setup-rate figures: {:?}", run0.figures);
    };
    assert_eq!(s.pair_creation, PairCreation::ControlPerPair);
    assert_eq!(
        (s.ops_ok, s.errors),
        (100, 0),
        "first error: {:?}",
        s.first_error
    );
    assert!(s.per_sec > 0.0 && s.op_latency.count == 100);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["runs"][0]["pair_creation"], "control-per-pair");
    assert!(table::render(&r).contains("setup-rate-control"));

    // Tokens ahead through ControlService (batched calls before the timed part).
    let r = run(
        &pki,
        &proxy,
        ADMIN,
        &[
            "setup-rate",
            "--pair-creation",
            "ahead",
            "--threads",
            "2",
            "--ops",
            "50",
        ],
    );
    let Figures::SetupRate(s) = &r.runs[0].figures else {
        panic!("setup-rate figures: {:?}", r.runs[0].figures);
    };
    assert_eq!((r.runs[0].scenario.as_str(), s.ops_ok), ("setup-rate", 50));
}

#[test]
fn a_non_admin_certificate_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), &[PROXY, ADMIN, OTHER]).unwrap();
    let proxy = Running::start(&pki, dir.path());
    let r = run(&pki, &proxy, OTHER, &["throughput", "--bytes", "65536"]);
    let Figures::Failed { error } = &r.runs[0].figures else {
        panic!("a non-admin is refused: {:?}", r.runs[0].figures);
    };
    assert!(error.to_lowercase().contains("permission"), "{error}");
}

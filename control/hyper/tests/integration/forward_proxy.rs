//! `proxy_url`: the directory client, the `jsonrpc_client` channel and our JSON-RPC clients reach
//! their target through a real HTTP forward proxy (tinyproxy, installed by scripts/install-deps.sh)
//! with CONNECT; a proxy that is down, refuses, wants credentials or misbehaves is named in a clear
//! error, and a proxy that never answers costs a call its deadline, never a hang.

use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use tandem_hyper::hyper_server::Listeners;
use tandem_hyper::sdclient::SdClient;
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{
    ApiDirectorySettings, ChannelKind, DirectoryClientSettings, DirectorySettings,
    JsonDirectorySettings, JsonRpcClientSettings, Timeouts,
};
use tandem_testkit::pki::TestPki;
use tandem_types::ForwardProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tandem_testkit::hyper_node::{
    Server, call, channel, hd_services, listener, plain_gateway, record, start_app, write_records,
};
use tandem_testkit::poll::{POLL_BOUND, until_blocking};
use tandem_testkit::sd;

/// Long enough for any loaded machine to finish a loopback call.
const COMPLETES: Duration = Duration::from_secs(30);

/// A tinyproxy on a free loopback port, with `extra` configuration lines; killed on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("tinyproxy.conf");
        let mut file = std::fs::File::create(&conf).unwrap();
        writeln!(
            file,
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\nAllow 127.0.0.1\n\
             LogLevel Connect\nLogFile \"{log}\"\nPidFile \"{pid}\"\n{extra}",
            log = dir.path().join("log").display(),
            pid = dir.path().join("pid").display(),
        )
        .unwrap();
        let child = Command::new("/usr/bin/tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (scripts/install-deps.sh installs it)");
        until_blocking("tinyproxy listens", POLL_BOUND, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self { child, port, dir }
    }

    fn url(&self) -> ForwardProxy {
        format!("http://127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn url_as(&self, user: &str, password: &str) -> ForwardProxy {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
            .parse()
            .unwrap()
    }

    /// Whether the proxy logged a CONNECT to `target`.
    fn tunnelled_to(&self, target: SocketAddr) -> bool {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        log.contains(&format!("CONNECT {target} HTTP/1.1"))
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_through(url: &str, proxy: &ForwardProxy, timeout: Duration) -> JsonRpcClient {
    JsonRpcClient::through(url, None, None, timeout, Some(proxy)).unwrap()
}

fn transport_reason(err: ClientError) -> String {
    match err {
        ClientError::Transport { reason, .. } => reason,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_directory_client_reaches_sd_through_the_forward_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&tmp.path().join("pki"), &["sd-1", "hd-1"]).unwrap();
    let sd = sd::start(sd::settings(&pki, sd::file_store(tmp.path()), None)).await;
    let proxy = Tinyproxy::start("");
    let settings = ApiDirectorySettings {
        endpoints: vec![format!("https://{}/jsonrpc", sd.addr)],
        server_names: vec!["sd-1".into()],
        jsonrpc_client: DirectoryClientSettings {
            tls: Some(pki.client_tls_settings("hd-1", "sd-1")),
            proxy_url: Some(proxy.url()),
        },
        ca_certificate_files: vec![pki.root_cert()],
        ca_intermediate_certificate_files: vec![pki.intermediate_cert()],
        cache_entries_for: Duration::from_secs(5),
    };
    let client = SdClient::from_settings(&settings, COMPLETES).unwrap();
    assert_eq!(
        client.tip().await.unwrap(),
        None,
        "an empty directory, read over TLS in the tunnel"
    );
    assert!(
        proxy.tunnelled_to(sd.addr),
        "the call went through the proxy"
    );

    drop(proxy);
    // A new client: the first one's pooled tunnel died with the proxy.
    let client = SdClient::from_settings(&settings, COMPLETES).unwrap();
    let err = client.tip().await.unwrap_err().to_string();
    assert!(
        err.contains("forward proxy http://127.0.0.1:") && err.contains("unreachable"),
        "{err}"
    );
    sd.stop().await;
}

#[tokio::test]
async fn the_jsonrpc_client_channel_delivers_through_the_forward_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start("");
    let app = start_app(Arc::new(OnceLock::new())).await;
    let path = tmp.path().join("directory.json");
    write_records(&path, vec![record("hd-1", "services", hd_services())]);
    let local = channel(ChannelKind::JsonRpcClient(JsonRpcClientSettings {
        endpoint: Some(format!("http://{app}/jsonrpc")),
        proxy_url: Some(proxy.url()),
        local: true,
        tls: None,
    }));
    let settings = HyperSettings {
        name: "hd-1".into(),
        directory: DirectorySettings::Json(JsonDirectorySettings { path }),
        channels: vec![local, plain_gateway()],
        signing: None,
        metrics: None,
        log_level: None,
        timeouts: Timeouts {
            call: COMPLETES,
            connect: COMPLETES,
        },
    };
    let listeners = Listeners {
        grpc: None,
        jsonrpc: Some(listener().await.into()),
    };
    let server = Server::start(settings, listeners);
    let (status, body) = call(&server.url(), "hd-1.echo", json!({"x": 1}), json!(1)).await;
    assert_eq!(
        (status, &body["result"]["params"]["x"]),
        (200, &json!(1)),
        "{body}"
    );
    assert!(
        proxy.tunnelled_to(app),
        "the app was reached through the proxy"
    );
    server.stop().await;
}

#[tokio::test]
async fn credentials_are_presented_and_a_407_says_what_to_do() {
    let app = start_app(Arc::new(OnceLock::new())).await;
    let url = format!("http://{app}/jsonrpc");
    let proxy = Tinyproxy::start("BasicAuth alice s3cret");

    let err = client_through(&url, &proxy.url(), COMPLETES)
        .call("echo", Default::default())
        .await
        .unwrap_err();
    let reason = transport_reason(err);
    assert!(
        reason.contains("wants credentials") && reason.contains("(407)"),
        "{reason}"
    );
    assert!(
        reason.contains("http://user:password@host:port"),
        "{reason}"
    );

    let err = client_through(&url, &proxy.url_as("alice", "wrong"), COMPLETES)
        .call("echo", Default::default())
        .await
        .unwrap_err();
    let reason = transport_reason(err);
    assert!(reason.contains("refused the user and password"), "{reason}");
    assert!(
        !reason.contains("wrong"),
        "the password is never printed: {reason}"
    );

    let answer = client_through(&url, &proxy.url_as("alice", "s3cret"), COMPLETES)
        .call("echo", json!({"y": 2}).as_object().unwrap().clone())
        .await
        .unwrap();
    assert_eq!(answer["params"]["y"], 2);
}

#[tokio::test]
async fn a_proxy_refusing_the_tunnel_is_quoted() {
    let app = start_app(Arc::new(OnceLock::new())).await;
    // Tunnels only to 443: ours is refused with tinyproxy's status line.
    let proxy = Tinyproxy::start("ConnectPort 443");
    let err = client_through(&format!("http://{app}/jsonrpc"), &proxy.url(), COMPLETES)
        .call("echo", Default::default())
        .await
        .unwrap_err();
    let reason = transport_reason(err);
    assert!(
        reason.contains(&format!("refused the tunnel to {app}: 403")),
        "{reason}"
    );
}

/// A "proxy" that accepts and then does `behave` with each connection.
async fn fake_proxy<F, Fut>(behave: F) -> ForwardProxy
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behave(stream));
        }
    });
    format!("http://{addr}").parse().unwrap()
}

#[tokio::test]
async fn a_silent_proxy_costs_the_call_its_deadline_and_a_babbling_one_is_cut() {
    let app = start_app(Arc::new(OnceLock::new())).await;
    let url = format!("http://{app}/jsonrpc");

    let silent = fake_proxy(|mut s| async move {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    })
    .await;
    let client = client_through(&url, &silent, Duration::from_millis(300));
    let call = client.call("echo", Default::default());
    let err = tokio::time::timeout(COMPLETES, call)
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");

    let babbling = fake_proxy(|mut s| async move {
        let mut head = [0u8; 512];
        let _ = s.read(&mut head).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        for _ in 0..1_000 {
            if s.write_all(line).await.is_err() {
                return;
            }
        }
    })
    .await;
    let err = client_through(&url, &babbling, COMPLETES)
        .call("echo", Default::default())
        .await
        .unwrap_err();
    assert!(transport_reason(err).contains("longer than the bound"));

    let not_http = fake_proxy(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
    })
    .await;
    let err = client_through(&url, &not_http, COMPLETES)
        .call("echo", Default::default())
        .await
        .unwrap_err();
    assert!(transport_reason(err).contains("is not HTTP"));
}

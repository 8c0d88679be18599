//! Compatibility with the original wire contract: a Python grpcio peer whose stubs are generated from
//! the unmodified original `hyper.proto` (tests/compat/hyper_original.proto) calls our server's
//! `/Hyper/Call` and serves a reverse `/Hyper/ServerCall` stream, both over mTLS.
//!
//! Needs `python3`; installs `grpcio grpcio-tools` with pip when `grpc_tools` is missing, and fails
//! with a clear message when that is impossible.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tandem_testkit::grpc;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use grpc::*;
use serde_json::{Value, json};
use tandem_hyper::broker::types::Channel;
use tandem_testkit::pki::TestPki;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

async fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .args(args)
        .output()
        .await
        .expect("python3 must be installed for the compatibility test")
}

/// grpcio + grpcio-tools importable, installing them if needed.
async fn ensure_grpc_tools() {
    if python(&["-c", "import grpc, grpc_tools"])
        .await
        .status
        .success()
    {
        return;
    }
    let install = python(&["-m", "pip", "install", "--quiet", "grpcio", "grpcio-tools"]).await;
    assert!(
        install.status.success()
            && python(&["-c", "import grpc, grpc_tools"])
                .await
                .status
                .success(),
        "the compatibility test needs the Python packages grpcio and grpcio-tools, and \
         `python3 -m pip install grpcio grpcio-tools` failed:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
}

/// Python stubs generated from the original proto into `out`.
async fn generate_stubs(out: &Path) {
    let include = format!("-I{}", compat_dir().display());
    let python_out = format!("--python_out={}", out.display());
    let grpc_out = format!("--grpc_python_out={}", out.display());
    let generated = python(&[
        "-m",
        "grpc_tools.protoc",
        &include,
        &python_out,
        &grpc_out,
        "hyper_original.proto",
    ])
    .await;
    assert!(
        generated.status.success(),
        "protoc: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
}

fn client_command(stubs: &Path, mode: &str, addr: &str, pki: &TestPki) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(compat_dir().join("hyper_client.py"))
        .arg(stubs)
        .arg(mode)
        .arg(addr)
        .arg("hd-2")
        .arg(pki.root_cert())
        .arg(pki.cert("hd-1"))
        .arg(pki.key("hd-1"))
        .kill_on_drop(true);
    cmd
}

fn last_json_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("client output {text:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_the_original_proto_interoperates() {
    ensure_grpc_tools().await;
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let stubs = tmp.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    generate_stubs(&stubs).await;

    let (listener, addr) = bind().await;
    let hd1 = entry(&pki, "hd-1", "g", None);
    let hd2 = entry(&pki, "hd-2", "g", Some(json!({"address": addr})));
    let sink = Arc::new(EchoSink::default());
    let server = start_server(
        &pki,
        "hd-2",
        listener,
        directory(vec![hd1, hd2]),
        sink.clone(),
        10_000,
    );

    // Call: params survive as a Struct, the caller is taken from the certificate.
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        client_command(&stubs, "call", &addr, &pki).output(),
    )
    .await
    .expect("python client finished")
    .unwrap();
    assert!(
        output.status.success(),
        "python call failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response = &last_json_line(&output.stdout)["response"];
    assert_eq!(response["id"], "hd-2.echo(py-1)");
    assert_eq!(response["result"]["method"], "hd-2.echo");
    assert_eq!(response["result"]["client"], "hd-1");
    assert_eq!(
        response["result"]["params"],
        json!({"x": 1.0, "list": [true, null, "s"], "nested": {"k": "v"}})
    );
    assert!(response.get("error").is_none());
    assert_eq!(sink.seen.lock().unwrap()[0].request.client_name, "hd-1");

    // ServerCall: the Python peer announces itself and answers requests we push, matched by id.
    let mut child = client_command(&stubs, "reverse", &addr, &pki)
        .arg("5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reverse = server.handle.reverse.clone();
    assert!(
        reverse.wait_for("hd-1", Duration::from_secs(60)).await,
        "the Python peer announced itself"
    );
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let reverse = reverse.clone();
            tokio::spawn(async move {
                reverse
                    .deliver(
                        request("hd-1", "work", &i.to_string(), json!({ "i": i })),
                        me("hd-2"),
                    )
                    .await
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().expect("the Python peer answered");
        assert_eq!(response.id, format!("hd-1.work({i})"));
        let result = response.result.unwrap();
        assert_eq!(result["method"], "hd-1.work");
        assert_eq!(result["clientName"], "hd-2");
        assert_eq!(result["params"]["i"], i as f64);
    }
    drop(child.stdin.take());
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = String::new();
    let read_all = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            last = line;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("python client exits");
    assert_eq!(
        serde_json::from_str::<Value>(&last).unwrap(),
        json!({"served": 5})
    );
}

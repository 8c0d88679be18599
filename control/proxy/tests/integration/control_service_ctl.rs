//! `proxy ctl` through its library entry point `run`: `pair create --json` prints exactly the
//! documented shape and the pair carries 64 MiB each way intact; `pairs`, `stats`, `events` and
//! `drain` talk to the same service; missing flags are usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use control_service::*;
use tandem_proxy::control_service::{CtlCommand, run};
use tandem_testkit::pki::TestPki;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    cmd: CtlCommand,
}

fn command(pki: &TestPki, proxy: &Proxy, action: &[&str]) -> CtlCommand {
    let cert = pki.cert(ADMIN);
    let key = pki.key(ADMIN);
    let ca = pki.root_cert();
    let addr = proxy.control_addr.to_string();
    let mut args = vec![
        "ctl",
        "--addr",
        &addr,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--server-name",
        PROXY,
    ];
    args.extend_from_slice(action);
    Cli::try_parse_from(args).unwrap().cmd
}

async fn ctl(pki: &TestPki, proxy: &Proxy, action: &[&str]) -> String {
    let mut out = Vec::new();
    run(command(pki, proxy, action), &mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_create_json_has_the_documented_shape_and_carries_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;

    let text = ctl(&pki, &proxy, &["pair", "create", "--json"]).await;
    assert!(
        text.starts_with("{\"endpoint\":\"") && text.ends_with("}\n"),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let obj = doc.as_object().unwrap();
    assert_eq!(
        obj.keys().map(String::as_str).collect::<Vec<_>>(),
        ["endpoint", "expires_at", "tokens"],
        "exactly these keys"
    );
    assert_eq!(obj["endpoint"], proxy.pairing.to_string());
    chrono::DateTime::parse_from_rfc3339(obj["expires_at"].as_str().unwrap()).unwrap();
    let tokens: Vec<Vec<u8>> = obj["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| STANDARD.decode(t.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t.len() == 32));

    let endpoint = obj["endpoint"].as_str().unwrap();
    let a = dial(endpoint, &tokens[0]).await;
    let b = dial(endpoint, &tokens[1]).await;
    transfer_both_ways(a, b, 64).await;

    let stats = ctl(&pki, &proxy, &["stats", "--json"]).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let total = |k: &str| {
        (stats["cores"].as_array().unwrap().iter())
            .map(|c| c[k].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total("bytes_a_to_b"), 64 << 20);
    assert_eq!(total("bytes_b_to_a"), 64 << 20);
    assert_eq!(stats["service"]["pairs_created"], 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_stats_watch_events_and_drain_commands() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;

    // A watcher first (no sleep: wait until the hub counts it), then a pair that expires in 1 s.
    let events = {
        let cmd = command(&pki, &proxy, &["events", "--json", "--count", "1"]);
        tokio::spawn(async move {
            let mut out = Vec::new();
            run(cmd, &mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        })
    };
    tandem_testkit::poll::until("the watcher subscribing", STEP, || async {
        (proxy.hub.counters().watchers > 0).then_some(())
    })
    .await;
    let human = ctl(&pki, &proxy, &["pair", "create", "--ttl", "1"]).await;
    assert!(
        human.contains("token A") && human.contains("expires at"),
        "{human}"
    );
    let pairs = ctl(&pki, &proxy, &["pairs", "--json"]).await;
    let pairs: serde_json::Value = serde_json::from_str(&pairs).unwrap();
    assert_eq!(pairs["pairs"][0]["state"], "issued");
    assert_eq!(pairs["cores"].as_array().unwrap().len(), 2);

    // The 1 s pair expires: one Closed(expired) event.
    let events = tokio::time::timeout(STEP, events).await.unwrap().unwrap();
    let event: serde_json::Value = serde_json::from_str(events.trim()).unwrap();
    assert_eq!(
        (event["kind"].as_str(), event["reason"].as_str()),
        (Some("closed"), Some("expired"))
    );

    let watch = ctl(
        &pki,
        &proxy,
        &["stats", "--watch", "--interval", "1", "--count", "2"],
    )
    .await;
    assert_eq!(
        watch.matches("\x1b[2K").count(),
        8,
        "2 draws of 4 lines: {watch:?}"
    );
    assert_eq!(
        watch.matches("\x1b[4A").count(),
        1,
        "the second draw goes back over the first"
    );

    let drained = ctl(&pki, &proxy, &["drain", "--grace", "0"]).await;
    assert!(drained.starts_with("drained: 0 live pairs"), "{drained}");
    let mut out = Vec::new();
    let e = run(command(&pki, &proxy, &["pair", "create"]), &mut out)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "status", "{e}");
    proxy.stop().await;
}

#[tokio::test]
async fn missing_flags_are_usage_errors() {
    let cli =
        Cli::try_parse_from(["ctl", "--cert", "x", "--key", "y", "--ca", "z", "stats"]).unwrap();
    let mut target = cli.cmd.target.clone();
    target.addr = None;
    let e = run(CtlCommand { target, ..cli.cmd }, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "usage", "{e}");
    let cli = Cli::try_parse_from(["ctl", "--addr", "127.0.0.1:1", "stats"]).unwrap();
    let mut target = cli.cmd.target.clone();
    (target.cert, target.key, target.ca, target.operator) = (None, None, None, None);
    let e = run(CtlCommand { target, ..cli.cmd }, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "usage", "{e}");
    let with_operator = Cli::try_parse_from(["ctl", "--operator", "hd-1", "pairs"]).unwrap();
    let tls = with_operator.cmd.target.tls_settings().unwrap();
    assert_eq!(
        tls.certificate_file.unwrap(),
        std::path::Path::new("settings/dev/certs/hd-1.crt")
    );
    assert_eq!(
        tls.ca_certificate_files,
        [std::path::Path::new("settings/dev/certs/root.crt")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_show_each_operators_use_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut quotas = tandem_proxy::settings::QuotaSettings::default();
    quotas.default.live_pairs = std::num::NonZeroU64::new(5);
    let admission =
        tandem_serving::Admission::new("control", Default::default(), Default::default());
    let proxy = Proxy::start_with_quotas(&pki, policy(&pki), admission, quotas).await;
    ctl(&pki, &proxy, &["pair", "create"]).await;

    let text = ctl(&pki, &proxy, &["quotas"]).await;
    let row = text
        .lines()
        .find(|l| l.starts_with(ADMIN))
        .unwrap_or_else(|| panic!("{ADMIN} is listed: {text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], [ADMIN, "1/5", "1/-", "1/-", "0/-"], "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ctl(&pki, &proxy, &["quotas", "--json"]).await).unwrap();
    assert_eq!(
        json["operators"][0]["quotas"]["live_pairs"],
        serde_json::json!({"used": 1, "limit": 5})
    );
    proxy.stop().await;
}

//! Issue 8 item 7: a token never appears whole in a log or an error. The seed scenario runs with
//! the real binaries at `RUST_LOG=debug` (sd, the public proxy, its Hyper node, hd-2, hd-1): hd-1
//! calls `hd-2._ping` through the proxy engine twice (a brokered pair: tokens travel through
//! `requestConnection` and `_connectionRequest`), then `proxy ctl pair create --json` makes a pair
//! whose two tokens are written to the pairing port. Every stderr line of every process and of
//! the ctl command is scanned for the known tokens (standard and URL-safe base64, hex) and for any
//! standalone 44-character standard-base64 string ending in `=` (the shape of a whole 32-byte token).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::seed;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use seed::*;
use serde_json::{Value, json};
use tandem_net::jsonrpc::params;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound for one awaited step of the pair check.
const STEP: Duration = Duration::from_secs(30);

/// Every way a whole token could be written into a log line.
fn forms(token: &[u8]) -> Vec<String> {
    vec![
        STANDARD.encode(token),
        URL_SAFE.encode(token),
        URL_SAFE_NO_PAD.encode(token),
        hex::encode(token),
        hex::encode_upper(token),
    ]
}

/// A standalone 44-character standard-base64 string ending in `=`: a whole encoded 32-byte value.
fn whole_token_shape() -> regex::Regex {
    regex::Regex::new(r"(?:^|[^A-Za-z0-9+/=])([A-Za-z0-9+/]{43}=)(?:[^A-Za-z0-9+/=]|$)").unwrap()
}

/// The lines (as `source: line`) that show a known token or a token-shaped string.
fn leaks(logs: &[(String, Vec<String>)], tokens: &[Vec<u8>]) -> Vec<String> {
    let shape = whole_token_shape();
    let needles: Vec<String> = tokens.iter().flat_map(|t| forms(t)).collect();
    let mut found = Vec::new();
    for (source, lines) in logs {
        for line in lines {
            if needles.iter().any(|n| line.contains(n.as_str())) || shape.is_match(line) {
                found.push(format!("{source}: {line}"));
            }
        }
    }
    found
}

#[test]
fn the_scanner_finds_planted_tokens_and_ignores_other_base64() {
    let token = [7u8; 32];
    let other = [9u8; 32];
    let clean = vec![
        "pair created pair_id=(0, 1) token_prefix=BwcH".to_owned(),
        // A SHA-256 fingerprint in hex and a 64-byte value in base64 are not tokens.
        format!("fingerprint={}", hex::encode([1u8; 32])),
        format!("sig={}", STANDARD.encode([3u8; 64])),
    ];
    let logs = vec![("clean".to_owned(), clean)];
    assert!(leaks(&logs, &[token.to_vec()]).is_empty());
    for planted in forms(&token) {
        let logs = vec![("p".to_owned(), vec![format!("token={planted}")])];
        assert_eq!(leaks(&logs, &[token.to_vec()]).len(), 1, "{planted}");
    }
    // An unknown token is caught by its shape alone.
    let logs = vec![(
        "p".to_owned(),
        vec![format!(r#"{{"tokens":["{}"]}}"#, STANDARD.encode(other))],
    )];
    assert_eq!(leaks(&logs, &[]).len(), 1);
}

/// `proxy ctl pair create --json` at debug level: the two tokens, the endpoint and ctl's stderr.
fn create_pair(layout: &Layout) -> (Vec<Vec<u8>>, String, Vec<String>) {
    let mut args = layout.ctl_args();
    args.extend(["pair".into(), "create".into(), "--json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("RUST_LOG".to_owned(), "debug".to_owned())];
    let (out, err) = run_capture(Path::new(PROXY), &args, &env);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let tokens = doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| STANDARD.decode(t.as_str().unwrap()).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(tokens.len(), 2, "{doc}");
    let endpoint = doc["endpoint"].as_str().unwrap().to_owned();
    (tokens, endpoint, err.lines().map(str::to_owned).collect())
}

/// Dials the pairing port with both tokens and checks that the two sides are joined.
async fn use_pair(endpoint: &str, tokens: &[Vec<u8>]) {
    let step = async {
        let mut a = tokio::net::TcpStream::connect(endpoint).await.unwrap();
        a.write_all(&tokens[0]).await.unwrap();
        let mut b = tokio::net::TcpStream::connect(endpoint).await.unwrap();
        b.write_all(&tokens[1]).await.unwrap();
        a.write_all(b"through the pair").await.unwrap();
        let mut got = [0u8; 16];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"through the pair");
    };
    tokio::time::timeout(STEP, step).await.expect("pair relays");
}

fn start(layout: &Layout, name: &'static str, bin: &str, args: &[&str], var: &str) -> Proc {
    spawn_logging(name, bin, args, &layout.env_with(var, name), "debug")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_any_log_of_the_seed_scenario_at_debug_level() {
    let layout = Layout::new();
    let mut sd = start(&layout, "sd-1", SD, &["run"], "SD_SETTINGS");
    sd.wait_for("sd listening");
    layout.sd_setup();
    let mut proxy = start(
        &layout,
        "public-proxy-1",
        PROXY,
        &["run", "public"],
        "PROXY_SETTINGS",
    );
    proxy.wait_for("public proxy started");
    let hyper = ["server", "run"];
    let mut pph = start(
        &layout,
        "public-proxy-hyper-1",
        HYPER,
        &hyper,
        "HYPER_SETTINGS",
    );
    pph.wait_for("hyper server running");
    let mut hd2 = start(&layout, "hd-2", HYPER, &hyper, "HYPER_SETTINGS");
    hd2.wait_for("hyper server running");
    pph.wait_for("reverse stream opened operator=hd-2");
    let mut hd1 = start(&layout, "hd-1", HYPER, &hyper, "HYPER_SETTINGS");
    hd1.wait_for("hyper server running");

    // The brokered call (tokens handed to hd-1 and hd-2 by the proxy), twice.
    let app = gateway(&layout);
    for _ in 0..2 {
        let ping = app
            .call("hd-2._ping", params([("hello", json!("world"))]))
            .await
            .unwrap();
        assert_eq!(ping["serverInfo"]["name"], "hd-2", "{ping}");
    }
    // A pair made by the operator and used with both tokens.
    let (tokens, endpoint, ctl_log) = create_pair(&layout);
    use_pair(&endpoint, &tokens).await;

    let mut logs = vec![("proxy ctl".to_owned(), ctl_log)];
    for p in [hd1, hd2, pph, proxy, sd] {
        let name = p.name.to_owned();
        logs.push((name, p.stop_and_collect()));
    }
    // The scan saw real debug output of every process, not empty pipes.
    for (source, lines) in &logs[1..] {
        assert!(
            lines.iter().any(|l| l.contains("DEBUG")),
            "{source} wrote no debug line: {lines:?}"
        );
    }
    let found = leaks(&logs, &tokens);
    assert!(
        found.is_empty(),
        "whole tokens in logs:\n{}",
        found.join("\n")
    );
}

//! `sd` reloads on SIGHUP without a restart: a rotated certificate is served to new connections
//! while an open connection keeps its own and keeps working; a bad settings file changes nothing,
//! says which file and key, is counted in `/metrics`, and `check-settings` refuses it with the same
//! words; a hostile client hammering through reloads does not keep a legitimate one from being
//! served.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use raw_http::call_on;
use tandem_testkit::hostile::{COMPLETES, call_once, src};
use tandem_testkit::metrics::{get, parse_prometheus, sample};
use tandem_testkit::pki::TestPki;
use tandem_testkit::sd::OPS;

use crate::support::reload::*;
use crate::support::sd_process::SD;

const OK: &str = "tandem_reload_total{result=\"ok\"}";
const ERROR: &str = "tandem_reload_total{result=\"error\"}";

async fn reloads(metrics: std::net::SocketAddr, series: &str) -> f64 {
    let (status, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    sample(&parse_prometheus(&text), series)
}

/// One JSON-RPC call over an already open TLS stream (HTTP/1.1), answered or the reason why not.
mod raw_http {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub async fn call_on<S>(stream: &mut S, method: &str) -> Result<String, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let body = format!(r#"{{"jsonrpc":"2.0","id":"1","method":"{method}","params":{{}}}}"#);
        let request = format!(
            "POST /jsonrpc HTTP/1.1\r\nhost: sd-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\"jsonrpc\"") {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("closed after {:?}", String::from_utf8_lossy(&got)));
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    }
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_and_open_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let role = live_role(dir.path(), &pki, "");
    let (mut sd, addrs) =
        crate::support::sd_process::spawn_sd_with(&role, &["sd listening", "metrics listening"]);
    let (rpc, metrics) = (addrs[0], addrs[1]);

    let (mut before, served) = tls_to_sd(&pki, rpc, 1).await;
    assert_eq!(served, der_of(&pki.cert("sd-1")));
    assert!(
        call_on(&mut before, "getTip")
            .await
            .unwrap()
            .contains("200 OK")
    );

    install(dir.path(), &pki.alt_cert("sd-1"), &pki.alt_key("sd-1"));
    signal(&sd, libc::SIGHUP);
    sd.wait_for("settings reloaded");

    let (mut after, served) = tls_to_sd(&pki, rpc, 2).await;
    assert_eq!(
        served,
        der_of(&pki.alt_cert("sd-1")),
        "a new connection gets the new certificate"
    );
    assert!(
        call_on(&mut after, "getTip")
            .await
            .unwrap()
            .contains("200 OK")
    );
    // The connection opened before the reload still works, on the certificate it was accepted with.
    assert_eq!(
        before.get_ref().1.peer_certificates().unwrap()[0],
        der_of(&pki.cert("sd-1"))
    );
    let answer = call_on(&mut before, "getTip").await;
    assert!(
        answer.unwrap().contains("200 OK"),
        "the old connection keeps serving"
    );
    assert_eq!(reloads(metrics, OK).await, 1.0);
    assert_eq!(reloads(metrics, ERROR).await, 0.0);
    sd.terminate();
}

#[tokio::test]
async fn a_bad_reload_changes_nothing_says_why_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let role = live_role(dir.path(), &pki, "");
    let (mut sd, addrs) =
        crate::support::sd_process::spawn_sd_with(&role, &["sd listening", "metrics listening"]);
    let (rpc, metrics) = (addrs[0], addrs[1]);

    // A key that is not a key: the TLS block fails to build.
    let live_key = dir.path().join("live/sd.key");
    std::fs::write(&live_key, "not a key\n").unwrap();
    signal(&sd, libc::SIGHUP);
    let line = sd.wait_for("settings reload refused");
    assert!(line.contains("jsonrpc_server.tls"), "names the key: {line}");
    assert!(
        line.contains(&live_key.display().to_string()),
        "names the file: {line}"
    );
    // check-settings refuses the same settings with the same words.
    let check = std::process::Command::new(SD)
        .arg("check-settings")
        .env("SD_SETTINGS", &role)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("jsonrpc_server.tls"), "{stderr}");
    assert!(stderr.contains(&live_key.display().to_string()), "{stderr}");

    // A settings file with an unknown key and a bad log level: refused, named.
    std::fs::copy(pki.key("sd-1"), &live_key).unwrap();
    let bad = role.join("002_bad.yml");
    std::fs::write(&bad, "log_level: \"tandem=loud\"\n").unwrap();
    signal(&sd, libc::SIGHUP);
    let line = sd.wait_for("settings reload refused");
    assert!(line.contains("log_level"), "names the key: {line}");
    std::fs::write(&bad, "limits:\n  max_records_per_submt: 3\n").unwrap();
    signal(&sd, libc::SIGHUP);
    let line = sd.wait_for("settings reload refused");
    assert!(
        line.contains("max_records_per_submt"),
        "names the key: {line}"
    );
    assert!(line.contains("002_bad.yml"), "names the file: {line}");

    // Nothing changed: the old certificate is served and the counter says three refusals.
    let (_, served) = tls_to_sd(&pki, rpc, 1).await;
    assert_eq!(served, der_of(&pki.cert("sd-1")));
    assert_eq!(reloads(metrics, ERROR).await, 3.0);
    assert_eq!(reloads(metrics, OK).await, 0.0);
    sd.terminate();
}

#[tokio::test]
async fn a_hostile_client_hammering_through_reloads_does_not_starve_a_legitimate_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let role = live_role(dir.path(), &pki, "");
    let (mut sd, addrs) =
        crate::support::sd_process::spawn_sd_with(&role, &["sd listening", "metrics listening"]);
    let (rpc, metrics) = (addrs[0], addrs[1]);
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    // The attacker (127.0.0.66): new connections as fast as it can, each sending garbage in
    // place of a ClientHello, then dropped.
    let hammer = {
        let (stop, attempts) = (stop.clone(), attempts.clone());
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut c) = tandem_testkit::hostile::connect_from(src(66), rpc).await {
                    let _ = c.write_all(b"\x16\x03\x01\xff\xffGARBAGE").await;
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let tls =
        tandem_net::tls::client_config(&pki.client_tls_settings("hd-1", "sd-1"), &[b"http/1.1"])
            .unwrap();
    for round in 0..3u8 {
        let cert = if round % 2 == 0 { "alt" } else { "main" };
        if cert == "alt" {
            install(dir.path(), &pki.alt_cert("sd-1"), &pki.alt_key("sd-1"));
        } else {
            install(dir.path(), &pki.cert("sd-1"), &pki.key("sd-1"));
        }
        signal(&sd, libc::SIGHUP);
        sd.wait_for("settings reloaded");
        let (status, body) = call_once(
            src(10 + round),
            rpc,
            &tls,
            "sd-1",
            "getTip",
            serde_json::json!({}),
        )
        .await;
        assert_eq!(status, 200, "legitimate call in round {round}: {body}");
    }
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(COMPLETES, hammer)
        .await
        .unwrap()
        .unwrap();
    assert!(attempts.load(Ordering::Relaxed) > 0, "the attacker ran");
    assert_eq!(reloads(metrics, OK).await, 3.0);
    sd.terminate();
}

//! The real `proxy run public` writes one access-log line per ended pair: a pair created with
//! `proxy ctl pair create` carries bytes each way, both sides close, and the line in the
//! configured file has the pair, its core, both sources, the waiting time, the duration, the byte
//! counts and the close reason; with `blur_seconds` the same pair's line is coarsened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::Path;
use tandem_testkit::poll::until_blocking;

use crate::support::proxy_process::{ProxyProc, STEP, create_pair};
use crate::support::seed::Layout;

/// Runs one pair through a proxy whose access log goes to `file` (with `extra` access_log keys)
/// and returns the line it wrote.
fn one_pair_line(extra: &str) -> serde_json::Value {
    let layout = Layout::new();
    let file = layout.root().join("access.log");
    std::fs::write(
        layout.role("public-proxy-1").join("009_access_log.yml"),
        format!(
            "public:\n  access_log:\n    file: \"{}\"\n{extra}",
            file.display()
        ),
    )
    .unwrap();
    let mut proxy = ProxyProc::start(&layout);
    proxy.wait_for("public proxy started");
    let (mut a, mut b) = create_pair(&layout);
    a.write_all(&[7u8; 3000]).unwrap();
    b.write_all(&[9u8; 5]).unwrap();
    let mut got = vec![0u8; 3000];
    b.read_exact(&mut got).unwrap();
    a.read_exact(&mut got[..5]).unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = a.read_to_end(&mut rest);
    let _ = b.read_to_end(&mut rest);
    wait_line(&file)
}

/// The first line of `file`, waiting (bounded) for the writer.
fn wait_line(file: &Path) -> serde_json::Value {
    let line = until_blocking(
        &format!("an access-log line in {}", file.display()),
        STEP,
        || {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            text.lines().next().map(str::to_owned)
        },
    );
    serde_json::from_str(&line).unwrap()
}

#[test]
fn an_ended_pair_gets_one_line_with_its_byte_counts() {
    let line = one_pair_line("");
    assert_eq!(line["bytes_a_to_b"], 3000, "{line}");
    assert_eq!(line["bytes_b_to_a"], 5, "{line}");
    assert_eq!(line["reason"], "normal", "{line}");
    let sources = line["sources"].as_array().expect("both sources");
    assert_eq!(sources.len(), 2);
    assert!(
        sources
            .iter()
            .all(|s| s.as_str().unwrap().starts_with("127.0.0.1:")),
        "{line}"
    );
    assert!(
        line["pair"].as_str().is_some() && line["core"].is_u64(),
        "{line}"
    );
    assert!(
        line["waited_ms"].is_u64() && line["duration_ms"].is_u64(),
        "{line}"
    );
    assert!(line["at"].as_str().unwrap().ends_with('Z'), "{line}");
}

#[test]
fn blur_seconds_coarsens_the_line() {
    let line = one_pair_line("    blur_seconds: 3600\n");
    assert_eq!(
        line["bytes_a_to_b"], 4096,
        "3000 rounded up to a power of two: {line}"
    );
    assert_eq!(line["bytes_b_to_a"], 8, "{line}");
    assert_eq!(line["duration_ms"].as_u64().unwrap() % 1000, 0, "{line}");
    assert!(
        line["at"].as_str().unwrap().ends_with(":00:00.000Z"),
        "{line}"
    );
    let sources = line["sources"].as_array().unwrap();
    assert!(
        sources.iter().all(|s| s == "127.0.0.1"),
        "ports dropped: {line}"
    );
}

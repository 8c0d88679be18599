//! Metrics endpoints in tests: a plain HTTP GET over loopback and a strict parser of the
//! Prometheus / OpenMetrics text exposition.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A plain HTTP/1.1 GET with `connection: close`; returns status and body (bounded by 10 s).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .expect("the metrics endpoint answers within 10 s");
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        (status, dechunk(body))
    } else {
        (status, body.to_owned())
    }
}

/// Undoes `transfer-encoding: chunked`.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// One sample: the series (name and labels as written) and its value.
pub type Sample = (String, f64);

/// Parses the text format strictly enough to catch a malformed exposition: every line is a
/// `# HELP`, `# TYPE`, `# EOF` or `name{labels} value` with a valid name, terminated labels and a
/// float value; every sample's family was declared by a `# TYPE` line.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut families: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "info", "unknown"].contains(&kind),
                "bad type in {line:?}"
            );
            families.push(name.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment line {line:?}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} has no # TYPE line"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((series.to_owned(), value));
    }
    samples
}

/// The value of exactly `series`; panics when it is missing.
pub fn sample(samples: &[Sample], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{series} missing"))
}

/// The sum of every sample of metric `name` (any labels) whose series contains all of `labels`.
pub fn total(samples: &[Sample], name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(s, _)| {
            let n = &s[..s.find('{').unwrap_or(s.len())];
            n == name && labels.iter().all(|l| s.contains(l))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// Metric family names exported (the `# TYPE` lines).
pub fn families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|r| r.split_once(' ').map(|(n, _)| n.to_owned()))
        .collect()
}

/// Sample names exported (series without labels), e.g. `engine_paired_total`.
pub fn sample_names(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .map(|(s, _)| s[..s.find('{').unwrap_or(s.len())].to_owned())
        .collect()
}

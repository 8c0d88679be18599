//! The PROXY protocol keys every listener block may carry (`serving:` of `jsonrpc_server`,
//! `grpc_server` and the proxy's `control`, and the proxy's `engine:`):
//!
//! - `proxy_protocol_from`: the trusted networks (`["10.0.0.0/8", "fd00::/8", "192.0.2.10"]`);
//!   absent = the PROXY protocol is off;
//! - `proxy_protocol_timeout`: seconds a trusted source has to send its header (default 5).

use tandem_types::proxy_protocol::{
    Cidr, DEFAULT_PROXY_HEADER_TIMEOUT, MAX_TRUSTED_NETWORKS, ProxyProtocol,
};

use super::convert::seconds;
use super::error::FieldIssues;

/// The key of the trusted networks.
pub const FROM_KEY: &str = "proxy_protocol_from";
/// The key of the header deadline.
pub const TIMEOUT_KEY: &str = "proxy_protocol_timeout";
/// The header deadline is between this many seconds...
const MIN_SECONDS: f64 = 0.05;
/// ...and this many (a balancer writes its header with the first segment).
const MAX_SECONDS: f64 = 60.0;

/// The typed PROXY protocol policy from the raw keys; every problem is pushed to `issues` under
/// its key. `None` when `from` is absent (or wrong).
pub fn proxy_protocol(
    from: Option<Vec<String>>,
    timeout: Option<f64>,
    issues: &mut FieldIssues,
) -> Option<ProxyProtocol> {
    let deadline = match timeout {
        Some(t) => seconds(t, TIMEOUT_KEY, MIN_SECONDS, MAX_SECONDS, issues)?,
        None => DEFAULT_PROXY_HEADER_TIMEOUT,
    };
    let Some(from) = from else {
        if timeout.is_some() {
            issues.push(TIMEOUT_KEY, format!("has no effect without {FROM_KEY}"));
        }
        return None;
    };
    if from.is_empty() || from.len() > MAX_TRUSTED_NETWORKS {
        issues.push(
            FROM_KEY,
            format!("must list 1 to {MAX_TRUSTED_NETWORKS} networks (leave it out to turn the PROXY protocol off)"),
        );
        return None;
    }
    let mut nets = Vec::with_capacity(from.len());
    for (i, text) in from.iter().enumerate() {
        match text.parse::<Cidr>() {
            Ok(net) => nets.push(net),
            Err(e) => issues.push(format!("{FROM_KEY}[{i}]"), e.to_string()),
        }
    }
    if nets.len() != from.len() {
        return None;
    }
    ProxyProtocol::new(nets, deadline)
        .map_err(|e| issues.push(FROM_KEY, e.to_string()))
        .ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn networks_and_timeout_convert_and_bad_ones_name_their_key() {
        let mut issues = FieldIssues::default();
        let from = Some(vec!["10.0.0.0/8".to_owned(), "::1".to_owned()]);
        let p = proxy_protocol(from, Some(0.5), &mut issues).unwrap();
        assert!(issues.is_empty());
        assert_eq!(p.trusted().len(), 2);
        assert_eq!(p.deadline, Duration::from_millis(500));
        assert!(proxy_protocol(None, None, &mut issues).is_none());
        assert!(issues.is_empty());
        let bad = Some(vec!["10.0.0.1/8".to_owned(), "nope".to_owned()]);
        assert!(proxy_protocol(bad, Some(120.0), &mut issues).is_none());
        let keys: Vec<&str> = issues.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [TIMEOUT_KEY]);
        let mut issues = FieldIssues::default();
        let bad = Some(vec!["10.0.0.1/8".to_owned(), "nope".to_owned()]);
        assert!(proxy_protocol(bad, None, &mut issues).is_none());
        let keys: Vec<&str> = issues.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["proxy_protocol_from[0]", "proxy_protocol_from[1]"]);
        let mut issues = FieldIssues::default();
        assert!(proxy_protocol(Some(vec![]), None, &mut issues).is_none());
        assert!(proxy_protocol(None, Some(1.0), &mut issues).is_none());
        assert_eq!(issues.0.len(), 2);
    }
}

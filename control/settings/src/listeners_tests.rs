use serde_json::json;

use super::*;

#[test]
fn host_port_parses_names_v4_and_v6() {
    assert_eq!(
        "localhost:8888".parse::<HostPort>().unwrap(),
        HostPort {
            host: "localhost".into(),
            port: 8888
        }
    );
    assert_eq!(
        "[::1]:0".parse::<HostPort>().unwrap().to_string(),
        "[::1]:0"
    );
    assert!(
        "localhost:70000"
            .parse::<HostPort>()
            .unwrap_err()
            .to_string()
            .contains("out of range")
    );
    assert!("localhost".parse::<HostPort>().is_err());
    assert!(":80".parse::<HostPort>().is_err());
}

#[test]
fn jsonrpc_server_defaults_and_errors() {
    let s: JsonRpcServerSettings =
        convert::<RawJsonRpcServerSettings, _>(&json!({"bind_address": "127.0.0.1:0"})).unwrap();
    assert_eq!(s.path, "/jsonrpc");
    assert!(s.tls.is_none());
    let e = convert::<RawJsonRpcServerSettings, JsonRpcServerSettings>(&json!({
        "bind_address": "h:99999", "cors": {"allowed_hosts": ["("]},
        "tcp_rate_limits": [{"type": "minute", "limit": 0}], "tls": {"ca_certificate_files": []}
    }))
    .unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "bind_address",
            "cors.allowed_hosts[0]",
            "tls.ca_certificate_files",
            "tcp_rate_limits[0].limit"
        ]
    );
}

#[test]
fn cors_takes_the_originals_headers_and_methods_and_checks_them() {
    let s: CorsSettings = convert::<RawCorsSettings, _>(&json!({
        "allowed_hosts": ["^https://app\\.example$"],
        "allowed_headers": ["Authorization", "X-Request-Id"],
        "allowed_methods": ["POST", "OPTIONS"]
    }))
    .unwrap();
    assert_eq!(s.allowed_headers, ["Authorization", "X-Request-Id"]);
    assert_eq!(s.allowed_methods, ["POST", "OPTIONS"]);
    let e = convert::<RawCorsSettings, CorsSettings>(&json!({
        "allowed_headers": ["ok", "bad header"],
        "allowed_methods": ["GET", "NOT A METHOD"],
        "allowed_hosts": vec!["x"; MAX_CORS_ENTRIES + 1]
    }))
    .unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["allowed_hosts", "allowed_headers[1]", "allowed_methods[1]"]
    );
}

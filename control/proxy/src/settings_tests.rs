use std::path::PathBuf;

use serde_json::json;

use super::*;
use tandem_settings::convert::convert;

fn role(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn the_dev_and_test_roles_convert() {
    let public = ProxySettings::load(&[role("settings/dev/roles/public-proxy-1")]).unwrap();
    let p = public.public.unwrap();
    assert_eq!(p.name, "public-proxy-1.ga");
    assert_eq!(p.tls_bind_address.to_string(), "localhost:4433");
    assert_eq!(p.internal_bind_address.to_string(), "localhost:9999");
    assert_eq!(p.jsonrpc_server.bind_address.to_string(), "localhost:6655");
    assert_eq!(p.jsonrpc_client.endpoint, "https://localhost:5544/jsonrpc");
    assert_eq!(p.accept_timeout, Duration::from_secs(10));
    assert!(matches!(p.datastore, DatastoreSettings::File(_)));
    assert!(
        crate::peer_check(&p.jsonrpc_server),
        "the dev public proxy checks that callers are its Hyper node"
    );
    let private = ProxySettings::load(&[role("settings/dev/roles/private-proxy-1")]).unwrap();
    let q = private.private.unwrap();
    assert_eq!(q.name, "private-proxy-1.ga");
    assert_eq!(q.internal_endpoint.address.to_string(), "localhost:7777");
    assert!(q.internal_endpoint.tls.is_some());
    assert_eq!(q.reannounce_interval, Duration::from_secs(600));
    assert_eq!(
        q.internal_endpoint.idle_timeout,
        Duration::from_secs(60),
        "ForwardTLS idle timeout default"
    );
    assert!(private.public.is_none());
    let test = ProxySettings::load(&[role("settings/test/roles/public-proxy-1")]).unwrap();
    let t = test.public.unwrap();
    assert_eq!(
        t.tcp_rate_limits.len(),
        1,
        "the test role's rate reaches the engine"
    );
}

#[test]
fn tcp_rate_limits_are_bounded_by_what_the_engine_enforces() {
    let mut v = minimal_public();
    v["tcp_rate_limits"] = json!([
        {"type": "second", "limit": 10}, {"type": "minute", "limit": 100},
        {"type": "hour", "limit": 1000}, {"type": "hour", "limit": 900},
    ]);
    let p: PublicProxySettings = convert::<RawPublicProxySettings, _>(&v).unwrap();
    assert_eq!(p.tcp_rate_limits.len(), 4);
    v["tcp_rate_limits"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "second", "limit": 1}));
    let e = convert::<RawPublicProxySettings, PublicProxySettings>(&v).unwrap_err();
    assert_eq!(e.0[0].0, "tcp_rate_limits");
}

fn minimal_public() -> serde_json::Value {
    json!({
        "name": "pp",
        "datastore": {"type": "file", "settings": {"filename": "/tmp/x"}},
        "jsonrpc_client": {"endpoint": "http://127.0.0.1:1/jsonrpc"},
        "jsonrpc_server": {"bind_address": "127.0.0.1:0"},
    })
}

#[test]
fn defaults_follow_the_original() {
    let p: PublicProxySettings = convert::<RawPublicProxySettings, _>(&minimal_public()).unwrap();
    assert_eq!(p.tls_bind_address.to_string(), "localhost:443");
    assert_eq!(p.internal_bind_address.to_string(), "localhost:9999");
    assert_eq!(p.internal_endpoint, None);
    assert_eq!(p.call_timeout, Duration::from_secs(10));
    assert_eq!(
        p.engine.config.pair_ttl,
        tandem_engine::EngineConfig::default().pair_ttl
    );
}

#[test]
fn bad_values_are_reported_with_their_keys() {
    let mut v = minimal_public();
    v["accept_timeout"] = json!(4000);
    v["internal_endpoint"] = json!("nohost");
    v["jsonrpc_client"] = json!({"endpoint": "https://h/jsonrpc", "proxy_url": "https://p"});
    v["engine"] = json!({"driver": "x"});
    let e = convert::<RawPublicProxySettings, PublicProxySettings>(&v).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "internal_endpoint",
            "accept_timeout",
            "jsonrpc_client.tls",
            "jsonrpc_client.proxy_url",
            "engine.driver"
        ]
    );
    let e = convert::<RawProxySettings, ProxySettings>(&json!({})).unwrap_err();
    assert_eq!(e.0[0].0, "");
    let e =
        convert::<RawProxySettings, ProxySettings>(&json!({"public": minimal_public(), "typo": 1}))
            .unwrap_err();
    assert_eq!(e.0[0].0, "typo");
}

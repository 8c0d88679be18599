//! Every dev and test role under `settings/` loads and converts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tandem_settings::hyper::{ChannelKind, DirectorySettings};
use tandem_settings::{DatastoreSettings, HyperSettings, Loader, SdSettings};

fn settings_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../settings")
}

fn role(env: &str, name: &str) -> PathBuf {
    settings_dir().join(env).join("roles").join(name)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn hyper(env: &str, name: &str) -> HyperSettings {
    let (value, prov) = Loader::with_env(&no_env)
        .load_paths(&[role(env, name)])
        .expect("role loads");
    HyperSettings::from_merged(&value, &prov).unwrap_or_else(|e| panic!("{env}/{name}: {e}"))
}

fn sd(env: &str, name: &str) -> SdSettings {
    let (value, prov) = Loader::with_env(&no_env)
        .load_paths(&[role(env, name)])
        .expect("role loads");
    SdSettings::from_merged(&value, &prov).unwrap_or_else(|e| panic!("{env}/{name}: {e}"))
}

fn certs(env: &str) -> PathBuf {
    tandem_settings::paths::normalize(&settings_dir().join(env).join("certs"))
}

#[test]
fn dev_sd_uses_the_embedded_file_datastore_and_dev_certs() {
    let s = sd("dev", "sd-1");
    assert_eq!(s.jsonrpc_server.bind_address.to_string(), "localhost:3322");
    assert_eq!(s.jsonrpc_server.tcp_rate_limits.len(), 2);
    let tls = s.jsonrpc_server.tls.as_ref().expect("sd serves TLS");
    assert_eq!(
        tls.certificate_file.as_ref(),
        Some(&certs("dev").join("sd-1.crt"))
    );
    assert!(tls.verify_client);
    let DatastoreSettings::File(file) = &s.directory.datastore else {
        panic!("not a file store")
    };
    assert_eq!(
        file.filename,
        tandem_settings::paths::normalize(&settings_dir().join("dev/data/sd-1.records"))
    );
    assert_eq!(
        s.directory.ca_intermediate_certificate_files,
        vec![certs("dev").join("intermediate.crt")]
    );
}

#[test]
fn dev_sd_redis_variant() {
    let s = sd("dev", "sd-1-redis");
    let DatastoreSettings::Redis(r) = &s.directory.datastore else {
        panic!("not redis")
    };
    assert_eq!(
        (r.addresses.as_slice(), r.key.as_str(), r.database),
        (&["127.0.0.1:6379".to_owned()][..], "sd-entries", 0)
    );
    assert!(r.password.is_empty());
}

#[test]
fn dev_hyper_roles_have_the_original_names_and_ports() {
    let expect = [
        ("hd-1", "hd-1", "localhost:8888", "localhost:5555"),
        ("hd-2", "hd-2", "localhost:8889", "localhost:3334"),
        ("ls-1", "ls-1", "localhost:4445", "localhost:5557"),
        (
            "public-proxy-hyper-1",
            "public-proxy-1.ga",
            "localhost:5556",
            "localhost:5544",
        ),
        (
            "private-proxy-hyper-1",
            "private-proxy-1.ga",
            "localhost:7776",
            "localhost:7766",
        ),
    ];
    for (role, name, grpc, jsonrpc) in expect {
        let s = hyper("dev", role);
        assert_eq!(s.name, name, "{role}");
        let Some(ChannelKind::GrpcServer(g)) = s.channel("grpc_server").map(|c| &c.kind) else {
            panic!("{role}: grpc_server")
        };
        assert_eq!(g.bind_address.to_string(), grpc, "{role}");
        let Some(ChannelKind::JsonRpcServer(j)) = s.channel("jsonrpc_server").map(|c| &c.kind)
        else {
            panic!("{role}: jsonrpc_server")
        };
        assert_eq!(j.server.bind_address.to_string(), jsonrpc, "{role}");
        let DirectorySettings::Api(api) = &s.directory else {
            panic!("{role}: api directory")
        };
        assert_eq!(
            api.endpoints,
            vec!["https://localhost:3322/jsonrpc".to_owned()],
            "{role}"
        );
        assert_eq!(api.cache_entries_for.as_secs(), 5);
    }
    let hd1 = hyper("dev", "hd-1");
    assert_eq!(
        hd1.metrics
            .as_ref()
            .map(|m| m.bind_address.to_string())
            .as_deref(),
        Some("localhost:2112")
    );
    assert_eq!(
        hd1.signing.as_ref().map(|s| s.certificate_file.clone()),
        Some(certs("dev").join("hd-1-sign.crt"))
    );
    let Some(ChannelKind::JsonRpcServer(j)) = hd1.channel("jsonrpc_server").map(|c| &c.kind) else {
        panic!()
    };
    assert!(
        !j.server.tls.as_ref().expect("tls").verify_client,
        "hd-1's JSON-RPC server does not ask for client certs"
    );
    let Some(ChannelKind::GrpcClient(c)) = hd1.channel("grpc_client").map(|c| &c.kind) else {
        panic!()
    };
    assert!(c.use_proxy);
    assert!(!hd1.to_string().is_empty());
}

#[test]
fn proxy_roles_load_as_generic_settings() {
    for env in ["dev", "test"] {
        let (value, _) = Loader::with_env(&no_env)
            .load_paths(&[role(env, "public-proxy-1")])
            .expect("loads");
        assert_eq!(value["public"]["name"], "public-proxy-1.ga");
        assert_eq!(
            value["public"]["jsonrpc_server"]["tls"]["verify_client"],
            false
        );
        assert!(
            value["public"]["jsonrpc_server"]["tls"]
                .get("validate_client")
                .is_none()
        );
    }
    let (value, _) = Loader::with_env(&no_env)
        .load_paths(&[role("dev", "private-proxy-1")])
        .expect("loads");
    assert_eq!(
        value["private"]["internal_endpoint"]["address"],
        "localhost:7777"
    );
    assert_eq!(value["private"]["datastore"]["type"], "file");
}

#[test]
fn test_roles_use_their_own_ports_certs_and_data() {
    let s = sd("test", "sd-1");
    assert_eq!(s.jsonrpc_server.bind_address.port, 13322);
    let DatastoreSettings::File(file) = &s.directory.datastore else {
        panic!("file store")
    };
    assert!(file.filename.starts_with(tandem_settings::paths::normalize(
        &settings_dir().join("test/data")
    )));
    for (role, grpc, jsonrpc) in [
        ("hd-1", 18888, 15555),
        ("hd-2", 18889, 13334),
        ("public-proxy-hyper-1", 15556, 15544),
    ] {
        let h = hyper("test", role);
        let Some(ChannelKind::GrpcServer(g)) = h.channel("grpc_server").map(|c| &c.kind) else {
            panic!()
        };
        assert_eq!(g.bind_address.port, grpc, "{role}");
        assert_eq!(
            g.tls.ca_certificate_files,
            vec![certs("test").join("root.crt")]
        );
        let Some(ChannelKind::JsonRpcServer(j)) = h.channel("jsonrpc_server").map(|c| &c.kind)
        else {
            panic!()
        };
        assert_eq!(j.server.bind_address.port, jsonrpc, "{role}");
        let DirectorySettings::Api(api) = &h.directory else {
            panic!()
        };
        assert_eq!(
            api.endpoints,
            vec!["https://localhost:13322/jsonrpc".to_owned()]
        );
    }
}

#[test]
fn test_role_ports_move_with_the_environment() {
    let env: BTreeMap<&str, &str> = [
        ("TANDEM_TEST_SD_PORT", "0"),
        ("TANDEM_TEST_HD1_GRPC_PORT", "40001"),
    ]
    .into();
    let lookup = |name: &str| env.get(name).map(|v| (*v).to_owned());
    let (value, prov) = Loader::with_env(&lookup)
        .load_paths(&[role("test", "hd-1")])
        .expect("loads");
    let h = HyperSettings::from_merged(&value, &prov).expect("converts");
    let Some(ChannelKind::GrpcServer(g)) = h.channel("grpc_server").map(|c| &c.kind) else {
        panic!()
    };
    assert_eq!(g.bind_address.port, 40001);
    let DirectorySettings::Api(api) = &h.directory else {
        panic!()
    };
    assert_eq!(
        api.endpoints,
        vec!["https://localhost:0/jsonrpc".to_owned()]
    );
}

#[test]
fn dev_directory_content_follows_the_spec_table() {
    let path = settings_dir().join("dev/directory/default/001_default.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    let records = doc["records"].as_array().expect("records");
    assert!(
        records
            .iter()
            .all(|r| r["created_at"] == "2021-05-17T10:00:00Z")
    );
    let names: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "hd-1",
            "hd-2",
            "ls-1",
            "private-proxy-1.ga",
            "public-proxy-1.ga"
        ]
        .into()
    );
    let hd1_channels = records
        .iter()
        .find(|r| r["name"] == "hd-1" && r["section"] == "channels")
        .expect("hd-1 channels");
    assert_eq!(
        hd1_channels["data"][1]["settings"]["proxy"],
        "public-proxy-1.ga"
    );
    assert!(
        !settings_dir()
            .join("dev/directory/001_certificates.json")
            .exists()
    );
}

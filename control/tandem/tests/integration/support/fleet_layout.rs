//! The fleet bed's files: certificates (`hyper certs`), the repository's test and dev roles moved
//! to the LAN (one copy per node), the directory content with the proxy operator's three nodes, and
//! its load into sd.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::{Value, json};
use tandem_testkit::netns::{Lan, Netns};

use super::fleet_bed::{MASTER_NAME, NODES, SD_PORT, SENTINEL_PORT, host, ports};
use super::seed::{HYPER, copy_dir, repo, run};

/// Certificates, role settings moved to the LAN, and the directory content with the operator's
/// three nodes.
pub fn layout(root: &Path, lan: &Lan) {
    let ip = |i: usize| lan.host(i).addr.to_string();
    run(
        Path::new(HYPER),
        &[
            "certs",
            "--certs-dir",
            root.join("certs").to_str().unwrap(),
            "--directory-dir",
            root.join("directory").to_str().unwrap(),
        ],
        &[],
    );
    let test_roles = repo().join("settings/test/roles");
    let role = |from: &str, to: &str, edits: &[(&str, String)]| {
        let dir = root.join("roles").join(to);
        copy_dir(&test_roles.join(from), &dir);
        let file = dir.join("001_default.yml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{to}: {from:?} not in the test role");
            text = text.replace(from, to);
        }
        std::fs::write(file, text).unwrap();
    };
    let sd_url = |sd: usize| {
        (
            "https://localhost:$SD_PORT",
            format!("https://{}:$SD_PORT", ip(host::SD[sd])),
        )
    };
    let sentinels: Vec<String> = host::SENTINELS
        .iter()
        .map(|&s| format!("\"{}:{SENTINEL_PORT}\"", ip(s)))
        .collect();
    // Every store of the fleet is on the one Redis behind the Sentinels, each under its own key.
    let redis_store = |what: &str, key: &str| {
        (
            format!(
                "    type: file # the embedded append-only store (see sd-1-redis for Redis)\n    settings:\n      filename: \"/$DIR/../../data/{what}.records\""
            ),
            format!(
                "    type: redis\n    settings:\n      addresses: [{}]\n      master_name: {MASTER_NAME}\n      key: {key}\n      database: 0\n      password: \"\"",
                sentinels.join(", ")
            ),
        )
    };
    role("hd-1", "hd-1", &[sd_url(0)]);
    role("hd-2", "hd-2", &[sd_url(1)]);
    let pp_store = redis_store("public-proxy-1", "fleet-announcements");
    for n in 0..NODES {
        let node_ip = ip(host::NODES[n]);
        role(
            "public-proxy-1",
            &format!("pp-{}", n + 1),
            &[
                (
                    "tls_bind_address: \"localhost",
                    "tls_bind_address: \"0.0.0.0".into(),
                ),
                (
                    "internal_bind_address: \"localhost",
                    "internal_bind_address: \"0.0.0.0".into(),
                ),
                (
                    "internal_endpoint: \"localhost",
                    format!("internal_endpoint: \"{node_ip}"),
                ),
                // The nodes share their announcements: one Redis list for the operator.
                (pp_store.0.as_str(), pp_store.1.clone()),
            ],
        );
        role(
            "public-proxy-hyper-1",
            &format!("pph-{}", n + 1),
            &[
                sd_url(n % 2),
                (
                    "bind_address: \"localhost:$GRPC_PORT\"",
                    "bind_address: \"0.0.0.0:$GRPC_PORT\"".into(),
                ),
            ],
        );
    }
    let sd_store = redis_store("sd-1", "fleet-entries");
    for sd in ["sd-a", "sd-b"] {
        role(
            "sd-1",
            sd,
            &[
                (
                    "bind_address: \"localhost:$SD_PORT\"",
                    "bind_address: \"0.0.0.0:$SD_PORT\"".into(),
                ),
                (sd_store.0.as_str(), sd_store.1.clone()),
            ],
        );
    }
    let dev_roles = repo().join("settings/dev/roles");
    let dev_role = |from: &str, to: &str, edits: &[(&str, String)]| {
        let dir = root.join("roles").join(to);
        copy_dir(&dev_roles.join(from), &dir);
        let file = dir.join("001_default.yml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{to}: {from:?} not in the dev role");
            text = text.replace(from, to);
        }
        std::fs::write(file, text).unwrap();
    };
    dev_role("private-proxy-1", "pv-proxy", &[]);
    dev_role(
        "private-proxy-hyper-1",
        "pv-hyper",
        &[
            (
                "https://localhost:3322",
                format!("https://{}:{SD_PORT}", ip(host::SD[0])),
            ),
            (
                "bind_address: \"localhost:7776\"",
                "bind_address: \"0.0.0.0:7776\"".into(),
            ),
        ],
    );
    directory(root, lan);
}

/// The dev directory content with `public-proxy-1.ga` as three nodes: a `grpc_server` channel and
/// a pairing endpoint per node.
fn directory(root: &Path, lan: &Lan) {
    let text =
        std::fs::read_to_string(repo().join("settings/dev/directory/default/001_default.json"))
            .unwrap();
    let mut content: Value = serde_json::from_str(&text).unwrap();
    let records = content["records"].as_array_mut().unwrap();
    let proxy = records
        .iter_mut()
        .find(|r| r["name"] == "public-proxy-1.ga" && r["section"] == "channels")
        .unwrap();
    let ips: Vec<String> = host::NODES
        .iter()
        .map(|&n| lan.host(n).addr.to_string())
        .collect();
    let mut channels: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"type": "grpc_server", "settings": {"address": format!("{ip}:5556")}}))
        .collect();
    channels.push(json!({"type": "grpc_client", "settings": {}}));
    channels.push(json!({"type": "proxy", "settings": {
        "endpoints": ips.iter().map(|ip| format!("{ip}:9999")).collect::<Vec<_>>()
    }}));
    proxy["data"] = Value::Array(channels);
    let private = records
        .iter_mut()
        .find(|r| r["name"] == "private-proxy-1.ga" && r["section"] == "channels")
        .unwrap();
    let private_ip = lan.host(host::PRIVATE).addr;
    private["data"] = json!([
        {"type": "grpc_client", "settings": {}},
        {"type": "grpc_server", "settings": {"address": format!("{private_ip}:7776")}},
    ]);
    std::fs::create_dir_all(root.join("directory/default")).unwrap();
    std::fs::write(
        root.join("directory/default/001_default.json"),
        serde_json::to_vec_pretty(&content).unwrap(),
    )
    .unwrap();
}

/// Loads the certificate records (a new chain) and the directory content through sd-a, signed by
/// hd-1, from hd-1's namespace.
pub fn sd_setup(root: &Path, ns: &Netns) {
    let bin_dir = Path::new(HYPER).parent().unwrap().display().to_string();
    for (dir, reset) in [
        (root.join("directory"), Some("--reset")),
        (root.join("directory/default"), None),
    ] {
        let mut env = ports();
        env.push(("BIN_DIR".into(), bin_dir.clone()));
        env.push((
            "SIGNER".into(),
            root.join("roles/hd-1").display().to_string(),
        ));
        let script = repo().join("scripts/sd-setup.sh");
        let mut args = vec![dir.to_str().unwrap()];
        args.extend(reset);
        ns.run(script.to_str().unwrap(), &args, &env);
    }
}

//! Migration from the original: its dev role settings (`settings/original/roles`, key for key,
//! plus the original keys they leave out) start unchanged with our binaries, on the original's fixed
//! ports and Redis at 6379, and run the seed scenario: a call from hd-1's gateway to `hd-2._ping`
//! through `public-proxy-1.ga`, with hd-1 reading the directory through a real HTTP forward proxy
//! (`proxy_url`). Fixed ports need a network of their own: everything runs in a network namespace
//! this test creates and removes; no traffic leaves it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tandem_net::http::JsonRpcClient;
use tandem_net::jsonrpc::params;

use crate::support::seed::{HYPER, PROXY, SD, copy_dir, repo, run};
use tandem_testkit::netns::Netns;
use tandem_testkit::poll::{POLL_BOUND, until_blocking};

/// The original roles beside freshly generated certificates and the dev directory content.
fn layout(root: &Path) {
    copy_dir(&repo().join("settings/original/roles"), &root.join("roles"));
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
    copy_dir(
        &repo().join("settings/dev/directory/default"),
        &root.join("directory/default"),
    );
}

fn role(root: &Path, var: &str, name: &str) -> Vec<(String, String)> {
    vec![(
        var.to_owned(),
        root.join("roles").join(name).display().to_string(),
    )]
}

/// What `check-settings` says besides the settings themselves: the WARN and WARNING lines.
fn check_settings_notices(bin: &str, env: &[(String, String)]) -> Vec<String> {
    let out = Command::new(bin)
        .arg("check-settings")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| l.contains("WARN"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_originals_dev_roles_check_with_only_documented_notices() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let root = tmp.path();
    for (bin, var, name) in [
        (SD, "SD_SETTINGS", "sd-1"),
        (HYPER, "HYPER_SETTINGS", "hd-2"),
        (HYPER, "HYPER_SETTINGS", "public-proxy-hyper-1"),
    ] {
        let notices = check_settings_notices(bin, &role(root, var, name));
        assert!(notices.is_empty(), "{name}: {notices:?}");
    }
    // Documented: hd-1's gateway takes no client certificates, as the original's dev role.
    let notices = check_settings_notices(HYPER, &role(root, "HYPER_SETTINGS", "hd-1"));
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("cannot verify its callers"),
        "{notices:?}"
    );
    // Documented: the original's typo `validate_client`, which it ignored as we do (loudly).
    let notices = check_settings_notices(PROXY, &role(root, "PROXY_SETTINGS", "public-proxy-1"));
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("public.jsonrpc_server.tls.validate_client")
            && notices[0].contains("public-proxy-1/001_default.yml"),
        "{notices:?}"
    );
}

#[test]
fn the_originals_dev_roles_run_the_seed_scenario_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    layout(tmp.path());
    let root = tmp.path().to_path_buf();
    let ns = Netns::isolated(&format!("tandem-migration-{}", std::process::id()));

    let _redis = ns.spawn(
        "redis",
        "redis-server",
        &[
            "--port",
            "6379",
            "--bind",
            "127.0.0.1 ::1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &[],
    );
    // redis-server logs to stdout; wait for its port instead.
    ns.enter(|| {
        until_blocking("redis listens in the namespace", POLL_BOUND, || {
            std::net::TcpStream::connect("127.0.0.1:6379").ok()
        })
    });
    let tiny_conf = root.join("tinyproxy.conf");
    std::fs::write(
        &tiny_conf,
        format!(
            "Port 3128\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogLevel Connect\n\
             LogFile \"{}\"\nPidFile \"{}\"\n",
            root.join("tinyproxy.log").display(),
            root.join("tinyproxy.pid").display()
        ),
    )
    .unwrap();
    let _forward = ns.spawn(
        "tinyproxy",
        "/usr/bin/tinyproxy",
        &["-d", "-c", tiny_conf.to_str().unwrap()],
        &[],
    );

    let mut sd = ns.spawn("sd", SD, &["run"], &role(&root, "SD_SETTINGS", "sd-1"));
    sd.wait_for("sd listening");
    let bin_dir = Path::new(HYPER).parent().unwrap().display().to_string();
    for (dir, reset) in [("directory", Some("--reset")), ("directory/default", None)] {
        let mut args = vec![
            repo().join("scripts/sd-setup.sh").display().to_string(),
            root.join(dir).display().to_string(),
        ];
        args.extend(reset.map(str::to_owned));
        let status = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(&args)
            .env("BIN_DIR", &bin_dir)
            .env("SIGNER", root.join("roles/hd-1"))
            .status()
            .unwrap();
        assert!(status.success(), "sd-setup {dir}");
    }

    let mut proxy = ns.spawn(
        "proxy",
        PROXY,
        &["run", "public"],
        &role(&root, "PROXY_SETTINGS", "public-proxy-1"),
    );
    proxy.wait_for("public proxy started");
    let mut pph = ns.spawn(
        "public-proxy-hyper-1",
        HYPER,
        &["server", "run"],
        &role(&root, "HYPER_SETTINGS", "public-proxy-hyper-1"),
    );
    pph.wait_for("hyper server running");
    let mut hd2 = ns.spawn(
        "hd-2",
        HYPER,
        &["server", "run"],
        &role(&root, "HYPER_SETTINGS", "hd-2"),
    );
    hd2.wait_for("hyper server running");
    pph.wait_for("reverse stream opened operator=hd-2");
    let mut hd1_env = role(&root, "HYPER_SETTINGS", "hd-1");
    hd1_env.push(("HYPER_FORWARD_PROXY".into(), "http://127.0.0.1:3128".into()));
    let mut hd1 = ns.spawn("hd-1", HYPER, &["server", "run"], &hd1_env);
    hd1.wait_for("hyper server running");

    let certs = root.join("certs");
    let ping = ns.enter(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tls = tandem_net::tls::client_config(
                &tandem_settings::TlsSettings {
                    ca_certificate_files: vec![certs.join("root.crt")],
                    certificate_file: None,
                    key_file: None,
                    server_name: Some("hd-1".into()),
                    verify_client: true,
                    request_client_cert: false,
                    insecure_skip_verify: false,
                },
                &[],
            )
            .unwrap();
            let app = JsonRpcClient::new(
                "https://127.0.0.1:5555/jsonrpc",
                Some(tls),
                Some("hd-1"),
                Duration::from_secs(30),
            )
            .unwrap();
            app.call("hd-2._ping", params([("hello", json!("original"))]))
                .await
                .unwrap()
        })
    });
    assert_eq!(ping["serverInfo"]["name"], "hd-2", "{ping}");
    assert_eq!(ping["params"]["_client"]["name"], "hd-1");
    assert_eq!(ping["params"]["hello"], "original");

    let forward_log = std::fs::read_to_string(root.join("tinyproxy.log")).unwrap_or_default();
    assert!(
        forward_log.contains("CONNECT localhost:3322"),
        "hd-1 read the directory through its proxy_url: {forward_log}"
    );
    drop(hd1);
    assert!(proxy.terminate().success(), "the proxy drains and exits 0");
}

//! Runs the real binaries with the repository's test roles on free ports: a whole Tandem mesh
//! (sd, the public proxy, its Hyper node, hd-1, hd-2) for end-to-end tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_net::http::JsonRpcClient;
use tandem_settings::TlsSettings;

pub const HYPER: &str = env!("CARGO_BIN_EXE_hyper");
pub const SD: &str = env!("CARGO_BIN_EXE_sd");
pub const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

pub use tandem_testkit::process::{Proc, copy_dir, repo, run, run_capture, spawn, spawn_logging};

/// Ports of the test roles (`TANDEM_TEST_*` variables), all free when chosen.
pub fn free_ports() -> BTreeMap<&'static str, u16> {
    tandem_testkit::process::free_port_block(&[
        "TANDEM_TEST_SD_PORT",
        "TANDEM_TEST_HD1_GRPC_PORT",
        "TANDEM_TEST_HD1_JSONRPC_PORT",
        "TANDEM_TEST_HD2_GRPC_PORT",
        "TANDEM_TEST_HD2_JSONRPC_PORT",
        "TANDEM_TEST_PPH_GRPC_PORT",
        "TANDEM_TEST_PPH_JSONRPC_PORT",
        "TANDEM_TEST_PP_TLS_PORT",
        "TANDEM_TEST_PP_INTERNAL_PORT",
        "TANDEM_TEST_PP_JSONRPC_PORT",
        "TANDEM_TEST_PP_CONTROL_PORT",
    ])
}

/// The test mesh's files: roles, certificates and a directory whose addresses use our ports.
pub struct Layout {
    pub dir: tempfile::TempDir,
    pub ports: BTreeMap<&'static str, u16>,
    /// The host every role binds and dials: `127.0.0.1`, or `[::1]` for [`Layout::ipv6`].
    pub host: &'static str,
}

impl Layout {
    /// The mesh over IPv6 loopback: every role's listeners, the directory's gRPC addresses and
    /// the proxy's pairing endpoint on `[::1]` (the roles' `localhost:` rewritten).
    pub fn ipv6() -> Self {
        let mut layout = Self::new();
        layout.host = "[::1]";
        let roles = layout.root().join("roles");
        for role in std::fs::read_dir(&roles).unwrap() {
            for file in std::fs::read_dir(role.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "yml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    std::fs::write(&path, text.replace("localhost:", "[::1]:")).unwrap();
                }
            }
        }
        let directory = layout.root().join("directory/default/001_default.json");
        let text = std::fs::read_to_string(&directory).unwrap();
        std::fs::write(&directory, text.replace("localhost:", "[::1]:")).unwrap();
        layout
    }

    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        copy_dir(&repo().join("settings/test/roles"), &root.join("roles"));
        let ports = free_ports();
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
        // The dev directory content, with the gRPC addresses and the proxy's pairing endpoint moved
        // to this mesh's ports.
        let text =
            std::fs::read_to_string(repo().join("settings/dev/directory/default/001_default.json"))
                .unwrap();
        let text = text
            .replace(
                "localhost:8888",
                &format!("localhost:{}", ports["TANDEM_TEST_HD1_GRPC_PORT"]),
            )
            .replace(
                "localhost:8889",
                &format!("localhost:{}", ports["TANDEM_TEST_HD2_GRPC_PORT"]),
            )
            .replace(
                "localhost:5556",
                &format!("localhost:{}", ports["TANDEM_TEST_PPH_GRPC_PORT"]),
            )
            .replace(
                "localhost:9999",
                &format!("localhost:{}", ports["TANDEM_TEST_PP_INTERNAL_PORT"]),
            );
        std::fs::create_dir_all(root.join("directory/default")).unwrap();
        std::fs::write(root.join("directory/default/001_default.json"), text).unwrap();
        Self {
            dir,
            ports,
            host: "127.0.0.1",
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn role(&self, name: &str) -> PathBuf {
        self.root().join("roles").join(name)
    }

    /// The port variables as environment pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.ports
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The environment plus one settings variable.
    pub fn env_with(&self, var: &str, role: &str) -> Vec<(String, String)> {
        let mut env = self.env();
        env.push((var.to_owned(), self.role(role).display().to_string()));
        env
    }

    /// Loads the certificates records (as a new chain) and the directory content, signed by hd-1.
    pub fn sd_setup(&self) {
        let bin_dir = Path::new(HYPER).parent().unwrap().display().to_string();
        for (dir, reset) in [
            (self.root().join("directory"), Some("--reset")),
            (self.root().join("directory/default"), None),
        ] {
            let mut env = self.env();
            env.push(("BIN_DIR".into(), bin_dir.clone()));
            env.push(("SIGNER".into(), self.role("hd-1").display().to_string()));
            let mut args = vec![dir.to_str().unwrap()];
            args.extend(reset);
            run(&repo().join("scripts/sd-setup.sh"), &args, &env);
        }
    }
}

impl Layout {
    /// `proxy ctl` flags for the test proxy's ControlService, as the admin `demo-app`.
    pub fn ctl_args(&self) -> Vec<String> {
        let certs = self.root().join("certs");
        vec![
            "ctl".into(),
            "--addr".into(),
            format!(
                "{}:{}",
                self.host, self.ports["TANDEM_TEST_PP_CONTROL_PORT"]
            ),
            "--server-name".into(),
            "public-proxy-1.ga".into(),
            "--cert".into(),
            certs.join("demo-app.crt").display().to_string(),
            "--key".into(),
            certs.join("demo-app.key").display().to_string(),
            "--ca".into(),
            certs.join("root.crt").display().to_string(),
        ]
    }
}

/// A local app's client of hd-1's gateway.
pub fn gateway(layout: &Layout) -> JsonRpcClient {
    let certs = layout.root().join("certs");
    let tls = TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join("hd-1.crt")),
        key_file: Some(certs.join("hd-1.key")),
        server_name: Some("hd-1".into()),
        verify_client: true,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    let config = tandem_net::tls::client_config(&tls, &[]).unwrap();
    let port = layout.ports["TANDEM_TEST_HD1_JSONRPC_PORT"];
    JsonRpcClient::new(
        &format!("https://{}:{port}/jsonrpc", layout.host),
        Some(config),
        Some("hd-1"),
        Duration::from_secs(30),
    )
    .unwrap()
}

//! The systemd units in deploy/systemd (services and their optional socket units) pass
//! `systemd-analyze verify`; the test fails, naming the fix, where the tool is missing. The
//! services are `Type=notify` (the proxy's with `NotifyAccess=all`, for its binary upgrade), reload
//! on SIGHUP, and the socket units pass their sockets under the names the programs
//! adopt.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn systemd_analyze() -> Option<&'static str> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Copies a unit with its ExecStart paths pointing at the binaries cargo built for this test.
fn instantiate(unit: &str, instance_name: &str, dir: &Path) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    let text = std::fs::read_to_string(repo.join("deploy/systemd").join(unit)).unwrap();
    let bins = Path::new(env!("CARGO_BIN_EXE_sd")).parent().unwrap();
    let text = text.replace("/usr/local/bin/", &format!("{}/", bins.display()));
    let path = dir.join(instance_name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn units_verify() {
    // No silent skip: a machine without the tool fails with the reason and the fix.
    let analyze = systemd_analyze().expect(
        "systemd-analyze is not installed, so the deploy/systemd units cannot be verified; \
         run scripts/install-deps.sh (it installs the `systemd` package when the tool is missing)",
    );
    let dir = tempfile::tempdir().unwrap();
    let units = [
        instantiate("tandem-sd.service", "tandem-sd.service", dir.path()),
        instantiate("tandem-sd.socket", "tandem-sd.socket", dir.path()),
        instantiate(
            "tandem-hyper@.service",
            "tandem-hyper@hd-1.service",
            dir.path(),
        ),
        instantiate(
            "tandem-hyper-grpc@.socket",
            "tandem-hyper-grpc@hd-1.socket",
            dir.path(),
        ),
        instantiate(
            "tandem-hyper-gateway@.socket",
            "tandem-hyper-gateway@hd-1.socket",
            dir.path(),
        ),
        instantiate(
            "tandem-proxy@.service",
            "tandem-proxy@public.service",
            dir.path(),
        ),
    ];
    let out = Command::new(analyze)
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and unparsable values and only warns: any output is a failure.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn services_reload_on_sighup_and_sockets_name_what_the_programs_adopt() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    let unit =
        |name: &str| std::fs::read_to_string(repo.join("deploy/systemd").join(name)).unwrap();
    for service in [
        "tandem-sd.service",
        "tandem-hyper@.service",
        "tandem-proxy@.service",
    ] {
        assert!(
            unit(service).contains("ExecReload=/bin/kill -HUP $MAINPID"),
            "{service} reloads with SIGHUP"
        );
        assert!(
            unit(service).contains("\nType=notify\n"),
            "{service} is Type=notify: the program says when it serves, reloads and stops"
        );
    }
    // A binary upgrade's new process (not the one systemd started) sends MAINPID= and READY=1.
    assert!(
        unit("tandem-proxy@.service").contains("\nNotifyAccess=all\n"),
        "tandem-proxy@.service accepts notifications from the process an upgrade starts"
    );
    for (socket, name) in [
        ("tandem-sd.socket", tandem_sd::JSONRPC_SOCKET),
        (
            "tandem-hyper-grpc@.socket",
            tandem_hyper::hyper_server::GRPC_SOCKET,
        ),
        (
            "tandem-hyper-gateway@.socket",
            tandem_hyper::hyper_server::JSONRPC_SOCKET,
        ),
    ] {
        assert!(
            unit(socket).contains(&format!("FileDescriptorName={name}\n")),
            "{socket} passes its socket as {name}, the name the program adopts"
        );
    }
}

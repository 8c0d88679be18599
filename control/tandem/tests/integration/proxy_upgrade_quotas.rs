//! Quotas across a binary upgrade of the real `proxy run public` (issues 15 + 16): two
//! operators (the ControlService admins `demo-app` and `public-proxy-1.ga`) hold pairs created
//! by `proxy ctl pair create`: `demo-app` is at its live-pairs quota (2: one relaying, one with
//! side A waiting), `public-proxy-1.ga` has a relaying pair and one that ended after moving
//! bytes. After `proxy ctl upgrade`, `proxy ctl quotas --json` shows the same use, `demo-app` is
//! still refused while `public-proxy-1.ga` is served, and `demo-app`'s relaying pair ending in
//! the new process releases its quota.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::proxy_process;
use crate::support::seed;
use crate::support::upgrade::{copy_binary, ping_pong};
use tandem_testkit::poll::until_blocking;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy_process::{HyperStub, STEP};
use seed::{Layout, PROXY};
use serde_json::Value;
use tandem_testkit::process::{Proc, spawn};

const HOSTILE: &str = "demo-app";
const OTHER: &str = "public-proxy-1.ga";

/// `proxy ctl <action>` as the admin `who` (its certificate); stdout, or stderr on failure.
fn ctl_as(layout: &Layout, who: &str, action: &[&str]) -> Result<String, String> {
    let certs = layout.root().join("certs");
    let mut args = layout.ctl_args();
    for a in &mut args {
        if *a == certs.join("demo-app.crt").display().to_string() {
            *a = certs.join(format!("{who}.crt")).display().to_string();
        } else if *a == certs.join("demo-app.key").display().to_string() {
            *a = certs.join(format!("{who}.key")).display().to_string();
        }
    }
    args.extend(action.iter().map(|s| s.to_string()));
    let out = Command::new(Path::new(PROXY)).args(&args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `pair create --json` as `who`: the endpoint and the two tokens (not dialled).
fn tokens(layout: &Layout, who: &str) -> Result<(String, [Vec<u8>; 2]), String> {
    let text = ctl_as(layout, who, &["pair", "create", "--json"])?;
    let doc: Value = serde_json::from_str(&text).unwrap();
    let token = |i: usize| STANDARD.decode(doc["tokens"][i].as_str().unwrap()).unwrap();
    Ok((
        doc["endpoint"].as_str().unwrap().to_owned(),
        [token(0), token(1)],
    ))
}

fn dial(endpoint: &str, token: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(token).unwrap();
    s
}

/// A relaying pair of `who`.
fn live_pair(layout: &Layout, who: &str) -> (TcpStream, TcpStream) {
    let (e, t) = tokens(layout, who).expect("pair create");
    let (mut a, mut b) = (dial(&e, &t[0]), dial(&e, &t[1]));
    ping_pong(&mut a, &mut b);
    (a, b)
}

/// Each operator's quota use from `proxy ctl quotas --json`: `operator/quota` → used.
fn quota_use(layout: &Layout) -> std::collections::BTreeMap<String, u64> {
    let text = ctl_as(layout, HOSTILE, &["quotas", "--json"]).expect("quotas");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for o in doc["operators"].as_array().unwrap() {
        let name = o["operator"].as_str().unwrap();
        for (quota, v) in o["quotas"].as_object().unwrap() {
            out.insert(format!("{name}/{quota}"), v["used"].as_u64().unwrap());
        }
    }
    out
}

/// Waits (bounded) until `operator/quota` is `used`.
fn wait_use(layout: &Layout, key: &str, used: u64) {
    until_blocking(&format!("{key} at {used}"), STEP, || {
        (quota_use(layout).get(key) == Some(&used)).then_some(())
    });
}

/// The UTC minute and day now.
fn windows() -> (u64, u64) {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (s / 60, s / 86_400)
}

fn start(layout: &Layout) -> (Proc, HyperStub) {
    let role = layout.role("public-proxy-1");
    // Tokens live 300 s: the waiting side outlives a slow machine's upgrade.
    std::fs::write(role.join("003_ttl.yml"), "public:\n  accept_timeout: 300\n").unwrap();
    std::fs::write(
        role.join("004_quotas.yml"),
        format!("public:\n  quotas:\n    operators:\n      {HOSTILE}:\n        live_pairs: 2\n"),
    )
    .unwrap();
    let hyper = HyperStub::start(layout);
    let binary = copy_binary(layout);
    let mut proc = spawn(
        "proxy",
        binary.to_str().unwrap(),
        &["run", "public", "--upgrade-ready-within", "60"],
        &layout.env_with("PROXY_SETTINGS", "public-proxy-1"),
    );
    proc.wait_for("public proxy started");
    (proc, hyper)
}

/// Kills the process that took over (not our child) when the test ends, however it ends.
struct Successor(i32);

impl Drop for Successor {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the pid the old proxy reported as its successor; it may be gone.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

#[test]
fn quota_use_survives_an_upgrade_and_a_hostile_operator_stays_refused() {
    let layout = Layout::new();
    let (mut proxy, _hyper) = start(&layout);

    // The hostile operator: one relaying pair, one waiting side A, then at its quota.
    let (mut ha, mut hb) = live_pair(&layout, HOSTILE);
    let (w_endpoint, w) = tokens(&layout, HOSTILE).expect("second pair");
    let mut waiting_a = dial(&w_endpoint, &w[0]);
    let refused = tokens(&layout, HOSTILE).expect_err("the third pair is over the quota");
    assert!(refused.contains("live_pairs"), "{refused}");
    // The other operator: a pair that moved bytes and ended, and a relaying pair.
    let (mut oa, ob) = live_pair(&layout, OTHER);
    oa.write_all(&[7u8; 1000]).unwrap();
    let mut ob = ob;
    let mut buf = [0u8; 1000];
    ob.read_exact(&mut buf).unwrap();
    drop((oa, ob));
    wait_use(&layout, &format!("{OTHER}/bytes_per_day"), 1008);
    let (mut oc, mut od) = live_pair(&layout, OTHER);

    let windows_before = windows();
    let before = quota_use(&layout);
    assert_eq!(before[&format!("{HOSTILE}/live_pairs")], 2);
    assert_eq!(before[&format!("{HOSTILE}/waiting_pairs")], 1);
    assert_eq!(before[&format!("{OTHER}/live_pairs")], 1);

    let out = ctl_as(&layout, HOSTILE, &["upgrade"]).expect("ctl upgrade");
    assert!(out.starts_with("upgraded: new pid "), "{out}");
    let new_pid: i32 = out
        .trim_start_matches("upgraded: new pid ")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _successor = Successor(new_pid);
    assert_eq!(
        proxy.wait_exit(STEP).code(),
        Some(0),
        "the old process exits"
    );

    let after = quota_use(&layout);
    let same_windows = windows() == windows_before;
    for (key, used) in &before {
        // A minute (or day) that turned between the two reads resets its window: compare the
        // windowed counts only within one window.
        let windowed = key.ends_with("/pairs_per_minute") || key.ends_with("/bytes_per_day");
        if windowed && !same_windows {
            continue;
        }
        assert_eq!(
            after.get(key),
            Some(used),
            "{key}: before {before:?}, after {after:?}"
        );
    }

    // The hostile operator is still at its quota; the other operator is served.
    let refused = tokens(&layout, HOSTILE).expect_err("still over the quota after the upgrade");
    assert!(refused.contains("live_pairs"), "{refused}");
    let (mut x, mut y) = live_pair(&layout, OTHER);
    ping_pong(&mut oc, &mut od);
    ping_pong(&mut x, &mut y);

    // The hostile operator's relaying pair ends in the new process: its quota is released.
    ping_pong(&mut ha, &mut hb);
    drop((ha, hb));
    wait_use(&layout, &format!("{HOSTILE}/live_pairs"), 1);
    let (mut p, mut q) = live_pair(&layout, HOSTILE);
    ping_pong(&mut p, &mut q);
    // The waiting side pairs in the new process: no longer counted as waiting.
    let mut waiting_b = dial(&w_endpoint, &w[1]);
    ping_pong(&mut waiting_a, &mut waiting_b);
    wait_use(&layout, &format!("{HOSTILE}/waiting_pairs"), 0);
}

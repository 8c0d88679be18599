//! Faults: `sd` killed with SIGKILL in the middle of a stream of submissions, on the file datastore
//! and on Redis (`appendfsync always`). After a restart every acknowledged record is served, in one
//! verified chain.
#![allow(clippy::unwrap_used)]

use crate::support::sd_process::*;

use std::path::Path;

use tandem_testkit::pki::TestPki;
use tandem_testkit::process::{Proc, STOP_TIMEOUT};
use tandem_testkit::redis::RedisServer;
use tandem_testkit::sd::*;

/// Streams single-record submissions until `sd` is killed; returns the acknowledged hashes.
async fn submit_until_killed(
    pki: &TestPki,
    addr: std::net::SocketAddr,
    mut child: Proc,
) -> Vec<String> {
    let c = client(pki, addr, "hd-1");
    let first = admin_chain(pki, "", vec![certificates_record(pki, "hd-1")]);
    c.submit(&first).await.unwrap();
    let mut acked = vec![first[0].hash.clone()];
    let mut killer = Some(child.id());
    for i in 0..200 {
        let batch = admin_chain(
            pki,
            acked.last().unwrap(),
            vec![groups_record("hd-1", &[&format!("g{i}")])],
        );
        let pending = c.submit(&batch);
        if i == 25 {
            // Kill while this submission is in flight.
            let pid = killer.take().unwrap();
            let (result, ()) = tokio::join!(pending, async move {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            });
            if result.is_ok() {
                acked.push(batch[0].hash.clone());
            }
            break;
        }
        pending.await.unwrap();
        acked.push(batch[0].hash.clone());
    }
    child.wait_exit(STOP_TIMEOUT);
    acked
}

async fn check_after_restart(pki: &TestPki, role: &Path, acked: &[String]) {
    let (mut child, addr) = spawn_sd(role);
    let chain = client(pki, addr, "hd-2").records_after("").await.unwrap();
    for (i, r) in chain.iter().enumerate().skip(1) {
        assert_eq!(
            r.parent_hash,
            chain[i - 1].hash,
            "the served chain links up"
        );
    }
    let served = hashes(&chain);
    for hash in acked {
        assert!(
            served.contains(hash),
            "acknowledged record {hash} lost ({} served, {} acked)",
            served.len(),
            acked.len()
        );
    }
    // And the directory still takes appends after the crash.
    let next = admin_chain(
        pki,
        served.last().unwrap(),
        vec![groups_record("hd-2", &["after"])],
    );
    client(pki, addr, "hd-1").submit(&next).await.unwrap();
    child.kill();
}

#[tokio::test]
async fn sigkill_mid_stream_loses_nothing_acknowledged_file() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, role) = file_store_role(dir.path(), "");
    let (child, addr) = spawn_sd(&role);
    let acked = submit_until_killed(&pki, addr, child).await;
    assert!(acked.len() >= 26, "the stream ran until the kill");
    check_after_restart(&pki, &role, &acked).await;
}

#[tokio::test]
async fn sigkill_mid_stream_loses_nothing_acknowledged_redis() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let mut redis = RedisServer::start().unwrap();
    let store = format!(
        "    type: redis\n    settings:\n      addresses: [\"{}\"]\n      key: sd-entries\n      password: \"\"",
        redis.addr()
    );
    let role = write_settings(dir.path(), &pki, &store, "");
    let (child, addr) = spawn_sd(&role);
    let acked = submit_until_killed(&pki, addr, child).await;
    // Redis itself crashes too: appendfsync always keeps every acknowledged push.
    redis.kill().unwrap();
    redis.restart().unwrap();
    check_after_restart(&pki, &role, &acked).await;
}

//! The fleet test bed's two `sd` instances (sd-a and sd-b, one Redis behind Sentinel): concurrent
//! submissions on one parent through both, for a few rounds. Exactly one is acknowledged per round
//! (the others get `STALE_APPEND`), and both instances then serve the winner as their tip. A step of
//! the fleet test (`fleet.rs`), so the bed starts once.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tandem_directory::signing::Signer;
use tandem_hyper::sdclient::SdClient;
use tandem_net::http::JsonRpcClient;
use tandem_sd::STALE_APPEND;
use tandem_settings::TlsSettings;
use tandem_testkit::poll::{POLL_BOUND, until};
use tandem_testkit::sd::{groups_record, rpc_code};

use crate::support::fleet_bed::{Bed, SD_PORT, host};

/// Rounds of concurrent submissions.
const ROUNDS: usize = 3;
/// Submissions per round, alternating between sd-a and sd-b.
const PER_ROUND: usize = 4;
/// A pause before each round: the test role's sd takes 10 connections per second from one
/// address (`tcp_rate_limits`), and every client here is hd-1's; a round opens at most
/// `PER_ROUND` plus a few for the tip reads.
const ROUND_PAUSE: Duration = Duration::from_millis(1100);

/// A directory client of the sd at `addr` as hd-1 (its TLS certificate under `certs`).
fn sd_client(certs: &Path, addr: std::net::Ipv4Addr) -> SdClient {
    let tls = TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join("hd-1.crt")),
        key_file: Some(certs.join("hd-1.key")),
        server_name: Some("sd-1".into()),
        verify_client: true,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    let config = tandem_net::tls::client_config(&tls, &[b"http/1.1"]).unwrap();
    SdClient::new(
        JsonRpcClient::new(
            &format!("https://{addr}:{SD_PORT}/jsonrpc"),
            Some(config),
            Some("sd-1"),
            Duration::from_secs(30),
        )
        .unwrap(),
    )
}

/// hd-1's signer (the sd-admin of the bed's directory).
fn hd1_signer(certs: &Path) -> Signer {
    Signer::from_pem(
        &std::fs::read_to_string(certs.join("hd-1-sign.key")).unwrap(),
        &std::fs::read_to_string(certs.join("hd-1-sign.crt")).unwrap(),
    )
    .unwrap()
}

/// Waits until `sd` serves `hash` as its tip.
async fn serves_tip(sd: &SdClient, hash: &str, what: &str) {
    until(what, POLL_BOUND, || async {
        let tip = sd.tip().await.ok()??;
        (tip.hash == hash).then_some(())
    })
    .await;
}

/// See the module docs.
pub(crate) fn two_sd_take_one_submission_per_parent(bed: &Bed) {
    let certs = bed.root().join("certs");
    let addrs = [bed.addr(host::SD[0]), bed.addr(host::SD[1])];
    bed.in_hd1(move |_| async move {
        let sds = Arc::new([sd_client(&certs, addrs[0]), sd_client(&certs, addrs[1])]);
        let signer = Arc::new(hd1_signer(&certs));
        // Rounds paced under the test role's per-source connection rate (see ROUND_PAUSE).
        let mut pace = tokio::time::interval(ROUND_PAUSE);
        pace.tick().await;
        for round in 0..ROUNDS {
            pace.tick().await;
            let tip = until("sd-a answers its tip", POLL_BOUND, || async {
                Some(sds[0].tip().await.ok()??.hash)
            })
            .await;
            serves_tip(&sds[1], &tip, "sd-b serves sd-a's tip").await;
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..PER_ROUND {
                let (sds, signer, tip) = (sds.clone(), signer.clone(), tip.clone());
                tasks.spawn(async move {
                    // hd-1 keeps its group (the bed's permissions) and gains one per submission.
                    let group = format!("fleet-sd-r{round}-s{i}");
                    let record = groups_record("hd-1", &["health-departments", &group]);
                    let batch = signer.sign_chain(&tip, vec![record]).unwrap();
                    sds[i % 2]
                        .submit(&batch)
                        .await
                        .map(|()| (i % 2, batch[0].hash.clone()))
                });
            }
            let mut winners = Vec::new();
            while let Some(result) = tasks.join_next().await {
                match result.unwrap() {
                    Ok(winner) => winners.push(winner),
                    Err(e) => assert_eq!(rpc_code(&e), Some(STALE_APPEND), "round {round}: {e}"),
                }
            }
            println!("fleet: sd round {round}: accepted by {winners:?} (0 = sd-a, 1 = sd-b)");
            assert_eq!(
                winners.len(),
                1,
                "round {round}: exactly one submission on parent {tip} wins: {winners:?}"
            );
            let (_, hash) = &winners[0];
            serves_tip(&sds[0], hash, "sd-a serves the winner").await;
            serves_tip(&sds[1], hash, "sd-b serves the winner").await;
        }
    });
}

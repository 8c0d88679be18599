//! A lying `sd` serving tampered records to a Hyper `api` directory client: a small JSON-RPC
//! server over TLS (the `sd-1` certificate of a [`TestPki`]) answers `getRecords` from a chain the
//! test controls. A record whose data changed after signing (hash mismatch) or one signed by a
//! non-admin is refused, and so is a genuine chain served reordered, thinned or rolled back: the
//! client keeps serving its last verified state, or reports a clear error when it has none, and
//! never serves the tampered entry.
#![allow(clippy::unwrap_used)]

use tandem_testkit::sd;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sd::{admin_chain, certificates_record, groups_record, signer};
use serde_json::{Value, json};
use tandem_directory::SignedChangeRecord;
use tandem_hyper::dirclient::DirectoryClient;
use tandem_net::http::{Methods, PeerInfo, RouteConfig, ServerLimits, jsonrpc_router, serve};
use tandem_net::jsonrpc::{ErrorObject, Request};
use tandem_settings::hyper::{ApiDirectorySettings, DirectoryClientSettings, Timeouts};
use tandem_testkit::pki::TestPki;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves `getRecords {after}` from `chain`: the records after `after` (all for `""` or an
/// unknown hash, as a reset), whatever they contain.
struct LyingSd {
    chain: Mutex<Vec<SignedChangeRecord>>,
}

impl Methods for LyingSd {
    async fn call(&self, request: Request, _peer: PeerInfo) -> Result<Value, ErrorObject> {
        if request.method != "getRecords" {
            return Err(ErrorObject::new(-32601, "method not found"));
        }
        let after = request
            .params
            .get("after")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let chain = self.chain.lock().unwrap().clone();
        let start = chain
            .iter()
            .position(|r| r.hash == after)
            .map_or(0, |i| i + 1);
        Ok(json!(chain[start..]))
    }
}

struct Running {
    sd: Arc<LyingSd>,
    dir: Arc<DirectoryClient>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(pki: &TestPki, chain: Vec<SignedChangeRecord>) -> Self {
        let sd = Arc::new(LyingSd {
            chain: Mutex::new(chain),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls =
            tandem_net::tls::server_config(&pki.tls_settings("sd-1"), &[b"http/1.1"]).unwrap();
        let route = RouteConfig {
            body_timeout: tandem_serving::DEFAULT_BODY_TIMEOUT,
            path: "/jsonrpc".into(),
            max_body_bytes: 1 << 20,
            rate_limits: Vec::new(),
            call_timeout: Duration::from_secs(5),
            cors: None,
        };
        let router = jsonrpc_router(sd.clone(), route);
        let (stop_sd, sd_stopped) = oneshot::channel::<()>();
        let sd_task = tokio::spawn(serve(
            listener,
            Some(tls.into()),
            router,
            ServerLimits {
                // The directory client's idle keep-alive connection is cut at once on stop.
                grace: Duration::from_millis(100),
                ..ServerLimits::default()
            },
            async {
                let _ = sd_stopped.await;
            },
        ));

        let settings = ApiDirectorySettings {
            endpoints: vec![format!("https://{addr}/jsonrpc")],
            server_names: vec!["sd-1".into()],
            jsonrpc_client: DirectoryClientSettings {
                tls: Some(pki.client_tls_settings("hd-2", "sd-1")),
                proxy_url: None,
            },
            ca_certificate_files: vec![pki.root_cert()],
            ca_intermediate_certificate_files: vec![pki.intermediate_cert()],
            // 0: every read asks the refresher, which fetches what the lying sd serves now.
            cache_entries_for: Duration::ZERO,
        };
        let timeouts = Timeouts {
            call: Duration::from_secs(2),
            connect: Duration::from_secs(2),
        };
        let dir = Arc::new(DirectoryClient::api("hd-2", &settings, &timeouts).unwrap());
        let (stop_dir, dir_stopped) = oneshot::channel::<()>();
        let dir_task = tokio::spawn({
            let dir = dir.clone();
            async move {
                dir.run_refresh(async {
                    let _ = dir_stopped.await;
                })
                .await
            }
        });
        Self {
            sd,
            dir,
            stops: vec![stop_dir, stop_sd],
            tasks: vec![dir_task, sd_task],
        }
    }

    fn serve_chain(&self, chain: Vec<SignedChangeRecord>) {
        *self.sd.chain.lock().unwrap() = chain;
    }

    async fn stop(self) {
        drop(self.dir);
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

fn groups(entries: &tandem_hyper::broker::Entries, name: &str) -> Option<Vec<String>> {
    entries.get(name).map(|e| e.groups.clone())
}

/// `record` with its data changed after signing: the hash no longer matches.
fn tampered(mut record: SignedChangeRecord, data: Value) -> SignedChangeRecord {
    record.record.data = data;
    record
}

/// A genuine admin chain: hd-1's certificates, then hd-1 and hd-2 groups.
fn genuine(pki: &TestPki) -> Vec<SignedChangeRecord> {
    admin_chain(
        pki,
        "",
        vec![
            certificates_record(pki, "hd-1"),
            groups_record("hd-1", &["sd-admin-ops"]),
            groups_record("hd-2", &["health-departments"]),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_first_fetch_is_a_clear_error_and_never_served() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
    let mut chain = genuine(&pki);
    let last = chain.pop().unwrap();
    chain.push(tampered(last, json!(["sd-admin"])));
    let running = Running::start(&pki, chain).await;

    let err = running.dir.entries().await.unwrap_err();
    assert!(
        matches!(
            err,
            tandem_directory::source::SourceError::Unreachable { .. }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("refused the served records"), "{text}");
    let status = running.dir.cache_status().unwrap();
    assert_eq!((status.chain_len, status.verified), (0, 0));
    assert!(status.error.is_some());

    // The sd stops lying: the genuine chain is accepted.
    running.serve_chain(genuine(&pki));
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(
        groups(&entries, "hd-2"),
        Some(vec!["health-departments".to_owned()])
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_non_admin_records_after_a_verified_chain_keep_the_verified_state() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
    let chain = genuine(&pki);
    let running = Running::start(&pki, chain.clone()).await;
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(
        groups(&entries, "hd-2"),
        Some(vec!["health-departments".to_owned()])
    );
    let verified_tip = chain.last().unwrap().hash.clone();

    // 1. The next record's data changed after an admin signed it (hash mismatch).
    let tip = chain.last().unwrap().hash.clone();
    let next = admin_chain(&pki, &tip, vec![groups_record("hd-2", &["labs"])]);
    let forged = tampered(next[0].clone(), json!(["sd-admin"]));
    // 2. A well-formed record (right hash, valid signature) by hd-2, who is not an sd-admin.
    let by_non_admin = signer(&pki, "hd-2", false)
        .sign_chain(&tip, vec![groups_record("hd-2", &["sd-admin"])])
        .unwrap();
    let kept = Kept {
        tip: &verified_tip,
        chain_len: 3,
        hd2: "health-departments",
    };
    for (case, lie) in [("tampered", forged), ("non-admin", by_non_admin[0].clone())] {
        running.serve_chain([chain.clone(), vec![lie]].concat());
        assert_kept_verified_state(&running, &kept, case, "does not verify").await;
    }

    // A genuine admin record after all that is accepted.
    running.serve_chain([chain, next].concat());
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(groups(&entries, "hd-2"), Some(vec!["labs".to_owned()]));
    assert_eq!(running.dir.cache_status().unwrap().chain_len, 4);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_thinned_or_rolled_back_chain_keeps_the_verified_state() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
    // hd-2 is in health-departments, then a later record revokes that (labs only).
    let chain = genuine(&pki);
    let revoke = admin_chain(&pki, &chain[2].hash, vec![groups_record("hd-2", &["labs"])]);
    let verified = [chain.clone(), revoke.clone()].concat();
    let running = Running::start(&pki, verified.clone()).await;
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(groups(&entries, "hd-2"), Some(vec!["labs".to_owned()]));
    let kept = Kept {
        tip: &revoke[0].hash,
        chain_len: 4,
        hd2: "labs",
    };

    // Genuine admin records after the verified tip; each lie, applied record by record, would
    // end with hd-2 back in health-departments.
    let tip = &revoke[0].hash;
    let a = admin_chain(
        &pki,
        tip,
        vec![
            groups_record("hd-3", &["x"]),
            groups_record("hd-2", &["health-departments"]),
            groups_record("hd-2", &["labs"]),
        ],
    );
    let b = admin_chain(
        &pki,
        tip,
        vec![
            groups_record("hd-2", &["health-departments"]),
            groups_record("hd-2", &["labs"]),
            groups_record("hd-3", &["x"]),
        ],
    );
    let lies = [
        // The revocation a[2] served before the grant a[1].
        (
            "reordered",
            [
                verified.clone(),
                vec![a[0].clone(), a[2].clone(), a[1].clone()],
            ]
            .concat(),
            "does not extend the record before it",
        ),
        // The revocation b[1] dropped from the middle.
        (
            "thinned",
            [verified.clone(), vec![b[0].clone(), b[2].clone()]].concat(),
            "does not extend the record before it",
        ),
        // The revocation dropped from the chain the client holds: the sd no longer knows the
        // client's tip and serves its whole (shorter) chain, as after a reset.
        ("rolled back", chain.clone(), "is already in the chain"),
    ];
    for (case, served, reason) in lies {
        running.serve_chain(served);
        assert_kept_verified_state(&running, &kept, case, reason).await;
    }
    let metrics = running.dir.metrics().unwrap();
    assert!(metrics.refusals_for("unlinked") >= 2);
    assert!(metrics.refusals_for("duplicate") >= 1);

    // The genuine continuation is accepted.
    running.serve_chain([verified, b].concat());
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(groups(&entries, "hd-2"), Some(vec!["labs".to_owned()]));
    assert_eq!(groups(&entries, "hd-3"), Some(vec!["x".to_owned()]));
    assert_eq!(running.dir.cache_status().unwrap().chain_len, 7);
    running.stop().await;
}

/// The last verified state a client must keep: its tip, chain length and hd-2's one group.
struct Kept<'a> {
    tip: &'a str,
    chain_len: usize,
    hd2: &'a str,
}

/// A read after the lie: either the last verified entries or a clear error; never the lie, and the
/// local chain still ends at the kept tip. The refresh error names `reason`.
async fn assert_kept_verified_state(running: &Running, kept: &Kept<'_>, case: &str, reason: &str) {
    match running.dir.entries().await {
        Ok(entries) => assert_eq!(
            groups(&entries, "hd-2"),
            Some(vec![kept.hd2.to_owned()]),
            "{case}: the previous verified state"
        ),
        Err(err) => {
            assert!(
                matches!(
                    err,
                    tandem_directory::source::SourceError::Unreachable { .. }
                ),
                "{case}: {err}"
            );
            assert!(
                err.to_string().contains("refused the served records"),
                "{case}: {err}"
            );
        }
    }
    let status = running.dir.cache_status().unwrap();
    assert_eq!(status.tip.as_deref(), Some(kept.tip), "{case}");
    assert_eq!(status.chain_len, kept.chain_len, "{case}");
    let error = status.error.unwrap_or_default();
    assert!(
        error.contains("refused the served records") && error.contains(reason),
        "{case}: {error}"
    );
}

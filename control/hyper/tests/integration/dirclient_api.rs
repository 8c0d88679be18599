//! The `api` directory client against an in-process `sd` (file datastore, generated PKI, mTLS):
//! incremental refresh, reset, cached reads, and a clear bounded error when the SD is unreachable.
#![allow(clippy::unwrap_used)]

use tandem_testkit::sd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sd::{admin_chain, certificates_record, client, file_store, groups_record, settings, start};
use tandem_hyper::dirclient::DirectoryClient;
use tandem_settings::hyper::{ApiDirectorySettings, DirectoryClientSettings, Timeouts};
use tandem_testkit::pki::TestPki;
use tokio::sync::oneshot;

struct Running {
    dir: Arc<DirectoryClient>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn api_settings(pki: &TestPki, endpoint: String, cache_secs: u64) -> ApiDirectorySettings {
    ApiDirectorySettings {
        endpoints: vec![endpoint],
        server_names: vec!["sd-1".into()],
        jsonrpc_client: DirectoryClientSettings {
            tls: Some(pki.client_tls_settings("hd-1", "sd-1")),
            proxy_url: None,
        },
        ca_certificate_files: vec![pki.root_cert()],
        ca_intermediate_certificate_files: vec![pki.intermediate_cert()],
        cache_entries_for: Duration::from_secs(cache_secs),
    }
}

fn run(pki: &TestPki, endpoint: String, cache_secs: u64, timeouts: Timeouts) -> Running {
    let dir = Arc::new(
        DirectoryClient::api("hd-1", &api_settings(pki, endpoint, cache_secs), &timeouts).unwrap(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let dir = dir.clone();
        async move {
            dir.run_refresh(async {
                let _ = stopped.await;
            })
            .await
        }
    });
    Running {
        dir,
        stop: Some(stop),
        task,
    }
}

fn groups(dir: &tandem_hyper::broker::Entries, name: &str) -> Vec<String> {
    dir.get(name).map(|e| e.groups.clone()).unwrap_or_default()
}

#[tokio::test]
async fn refreshes_incrementally_verifying_each_record_once_and_follows_a_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
    let sd = start(settings(&pki, file_store(tmp.path()), None)).await;
    let sdc = client(&pki, sd.addr, "hd-1");
    let first = admin_chain(
        &pki,
        "",
        vec![
            certificates_record(&pki, "hd-1"),
            groups_record("hd-1", &["sd-admin-ops"]),
        ],
    );
    sdc.submit(&first).await.unwrap();

    // cache_entries_for 0: every read asks the refresher, which fetches only what is new.
    let running = run(
        &pki,
        format!("https://{}/jsonrpc", sd.addr),
        0,
        Timeouts::default(),
    );
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(groups(&entries, "hd-1"), vec!["sd-admin-ops"]);
    let status = running.dir.cache_status().unwrap();
    assert_eq!((status.chain_len, status.verified), (2, 2));

    let tip = first.last().unwrap().hash.clone();
    sdc.submit(&admin_chain(
        &pki,
        &tip,
        vec![groups_record("hd-2", &["health-departments"])],
    ))
    .await
    .unwrap();
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(groups(&entries, "hd-2"), vec!["health-departments"]);
    let status = running.dir.cache_status().unwrap();
    assert_eq!(
        (status.chain_len, status.verified),
        (3, 3),
        "only the new record was fetched and verified"
    );
    assert_eq!(running.dir.own_entry().await.unwrap().name, "hd-1");

    // A reset: a new root chain replaces everything the client knew.
    let reset = admin_chain(
        &pki,
        "",
        vec![
            certificates_record(&pki, "hd-1"),
            groups_record("hd-2", &["after-reset"]),
        ],
    );
    sdc.submit(&reset).await.unwrap();
    let entries = running.dir.entries().await.unwrap();
    assert_eq!(groups(&entries, "hd-2"), vec!["after-reset"]);
    assert!(
        groups(&entries, "hd-1").is_empty(),
        "records of the old chain are gone"
    );
    let status = running.dir.cache_status().unwrap();
    assert_eq!(status.chain_len, 2);
    assert_eq!(status.tip.as_deref(), Some(reset[1].hash.as_str()));
    running.stop().await;
    sd.stop().await;
}

#[tokio::test]
async fn a_fresh_cache_is_served_without_waiting_for_the_sd() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "sd-1"]).unwrap();
    let sd = start(settings(&pki, file_store(tmp.path()), None)).await;
    let sdc = client(&pki, sd.addr, "hd-1");
    let first = admin_chain(&pki, "", vec![certificates_record(&pki, "hd-1")]);
    sdc.submit(&first).await.unwrap();
    let running = run(
        &pki,
        format!("https://{}/jsonrpc", sd.addr),
        3600,
        Timeouts::default(),
    );
    assert!(running.dir.entries().await.unwrap().contains_key("hd-1"));
    sd.stop().await;
    // The SD is gone, but the cache is young: reads are answered from it at once.
    let started = Instant::now();
    assert!(running.dir.entries().await.unwrap().contains_key("hd-1"));
    // No wait for the gone sd (its `timeouts.connect`, 5 s by default); room for a loaded machine.
    assert!(started.elapsed() < Timeouts::default().connect);
    running.stop().await;
}

fn short() -> Timeouts {
    Timeouts {
        call: Duration::from_secs(1),
        connect: Duration::from_millis(700),
    }
}

#[tokio::test]
async fn an_unreachable_sd_gives_a_clear_error_within_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "sd-1"]).unwrap();
    // Nothing listens on a port we bound and released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let running = run(&pki, format!("https://{closed}/jsonrpc"), 5, short());
    let started = Instant::now();
    let err = running.dir.entries().await.unwrap_err();
    // A refused connect fails at once (the message says "unreachable"); the bound catches a hang.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            tandem_directory::source::SourceError::Unreachable { .. }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("unreachable") && text.contains(&closed.to_string()),
        "{text}"
    );
    assert!(running.dir.cache_status().unwrap().error.is_some());
    running.stop().await;

    // A server that accepts and never answers: the caller's wait is bounded by timeouts.connect.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let running = run(&pki, format!("https://{addr}/jsonrpc"), 5, short());
    let started = Instant::now();
    let err = running.dir.entries().await.unwrap_err();
    let waited = started.elapsed();
    // Not before timeouts.connect (0.7 s); the message names it; the bound catches a hang.
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    assert!(
        err.to_string()
            .contains("unreachable: no answer within 0.7s"),
        "{err}"
    );
    running.stop().await;
    drop(silent);
}

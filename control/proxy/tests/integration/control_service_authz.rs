//! Who may call the ControlService: the settings allow-list and the directory's `proxy-admin`
//! group are admitted; another operator's valid certificate gets `PermissionDenied` on every
//! call; a certificate from a foreign CA fails the handshake. Both kinds of refusal are counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;

use std::time::Duration;

use control_service::*;
use tandem_proxy::control_service::{AdminPolicy, ControlClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;

    // Allow-listed by name, and admitted through the directory group.
    let admin = proxy.client_from(&pki, ADMIN).await.unwrap();
    admin.stats().await.unwrap();
    let group_admin = proxy.client_from(&pki, GROUP_ADMIN).await.unwrap();
    group_admin.create_pair(None).await.unwrap();

    // A valid operator certificate, but not an admin: refused on every call.
    let other = proxy.client_from(&pki, OTHER).await.unwrap();
    let e = other.create_pair(None).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    assert_eq!(e.kind(), "permission_denied");
    let e = other.list_pairs(0).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    let e = other.watch_events().await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    let e = other.drain(Duration::ZERO).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    assert_eq!(proxy.server.counters().denied_calls, 4);
    assert_eq!(
        proxy.server.counters().pairs_created,
        1,
        "the refused create made no pair"
    );

    // A certificate from another CA: the handshake fails (connect or first call).
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = pki_foreign(foreign_dir.path());
    let tls = tandem_net::tls::client_config(
        &tandem_settings::tls::TlsSettings {
            // Trust our proxy's CA, present a certificate of the foreign CA.
            ca_certificate_files: vec![pki.root_cert()],
            ..foreign.client_tls_settings(ADMIN, PROXY)
        },
        &[b"h2"],
    )
    .unwrap();
    let attempt = async {
        let client = ControlClient::connect(
            &proxy.control_addr.to_string(),
            tls,
            rustls_pki_types::ServerName::try_from(PROXY).unwrap(),
            Duration::from_secs(5),
        )
        .await?;
        client.stats().await
    };
    assert!(
        attempt.await.is_err(),
        "a foreign-CA certificate is refused"
    );
    // The server counts the failed handshake (its task may finish just after the client sees it).
    tandem_testkit::poll::until("the handshake failure counted", STEP, || async {
        (proxy.server.counters().handshake_failures > 0).then_some(())
    })
    .await;

    let service = admin.stats().await.unwrap().service.unwrap();
    assert_eq!(service.denied_calls, 4);
    assert!(service.handshake_failures >= 1);
    drop((admin, group_admin, other));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_policy_refuses_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, AdminPolicy::default()).await;
    let client = proxy.client_from(&pki, ADMIN).await.unwrap();
    let e = client.stats().await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied));
    drop(client);
    proxy.stop().await;
}

fn pki_foreign(dir: &std::path::Path) -> tandem_testkit::pki::TestPki {
    tandem_testkit::pki::TestPki::generate(dir, &[ADMIN]).unwrap()
}

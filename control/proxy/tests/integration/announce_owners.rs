//! Announcements against hostile operators, through the real JSON-RPC methods: another operator
//! of the public proxy and another tenant of the private proxy, both allowed the same suffix,
//! cannot withdraw, shorten or take over a live domain (409, counted) while it keeps routing to
//! its owner; the owner's withdrawal (the original client's past `expires_at`) frees it. The
//! per-operator quota and the maximum lifetime are refused with errors that name them.
#![allow(clippy::unwrap_used)]

use crate::support::proxy::*;
use crate::support::sni::{backend, https_get, stack};

use std::num::NonZeroUsize;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use tandem_directory::entry::DirectoryEntry;
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_net::jsonrpc::{ErrorObject, params};
use tandem_proxy::PublicProxy;
use tokio::net::TcpListener;

const DOMAIN: &str = "foo.internal-server.local";
const SUFFIX: &str = ".internal-server.local";

fn rpc_error(e: ClientError) -> ErrorObject {
    match e {
        ClientError::Rpc { error, .. } => error,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// A tenant of the private proxy allowed [`SUFFIX`].
fn tenant(name: &str) -> DirectoryEntry {
    with_proxy_settings(entry(name, &[], &[]), PRIVATE, &[SUFFIX])
}

/// An operator allowed [`SUFFIX`] at the public proxy.
fn operator(name: &str) -> DirectoryEntry {
    with_proxy_settings(entry(name, &[], &[]), PUBLIC, &[SUFFIX])
}

fn at(delta: TimeDelta) -> Value {
    json!((Utc::now() + delta).to_rfc3339())
}

/// `announceConnection` on the private proxy as tenant `who`.
async fn tenant_announce(
    private: &JsonRpcClient,
    who: &str,
    expires_at: Value,
) -> Result<Value, ClientError> {
    private
        .call(
            "announceConnection",
            params([
                ("proxy", json!(PUBLIC)),
                ("domain", json!(DOMAIN)),
                ("expires_at", expires_at),
                ("_client", client_info(&tenant(who))),
            ]),
        )
        .await
}

/// `announceConnections` on the public proxy as operator `who` (what its Hyper node delivers).
async fn operator_announce(
    public: &JsonRpcClient,
    who: &DirectoryEntry,
    connections: Value,
) -> Result<Value, ClientError> {
    public
        .call(
            "announceConnections",
            params([("connections", connections), ("_client", client_info(who))]),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hijack_is_refused_while_the_owners_domain_keeps_routing() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend_addr, backend_task) = backend(cert.clone(), key).await;
    let (stack, private) = stack(dir.path(), backend_addr).await;
    let tls_port = stack.public.engine_addrs().tls.unwrap();
    let public = stack.hypers[1].hyper.routes.lock().unwrap()[PUBLIC]
        .client
        .clone();

    // The owner: tenant internal-server, through the private proxy, for a day.
    let day = at(TimeDelta::days(1));
    let ok = tenant_announce(&private, "internal-server", day.clone()).await;
    assert_eq!(ok.unwrap(), json!("ok"));
    assert!(
        https_get(tls_port, DOMAIN, &cert)
            .await
            .unwrap()
            .ends_with("hello")
    );

    // Another operator of the public proxy, allowed the same suffix: withdraw, shorten, take over.
    let thief = operator("hd-2");
    for attempt in [
        json!([{"domain": DOMAIN, "expires_at": at(-TimeDelta::weeks(1))}]),
        json!([{"domain": DOMAIN, "expires_at": at(TimeDelta::seconds(1))}]),
        json!([{"domain": DOMAIN.to_uppercase()}]),
    ] {
        let r = operator_announce(&public, &thief, attempt).await.unwrap();
        assert_eq!(r, json!([{"code": 409, "message": "already taken"}]));
    }
    // Another tenant of the private proxy with an overlapping suffix: refused there, so nothing
    // reaches the public proxy (where the private proxy itself is the owner).
    for attempt in [at(-TimeDelta::weeks(1)), json!(null)] {
        let err = tenant_announce(&private, "hd-3", attempt)
            .await
            .unwrap_err();
        let err = rpc_error(err);
        assert_eq!((err.code, err.message.as_str()), (409, "already taken"));
    }

    // Still the owner's, still routing, expiry untouched.
    let live = public.call("getAnnouncements", params([])).await.unwrap();
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
    assert_eq!(live[0]["operator"], PRIVATE);
    let expires: chrono::DateTime<Utc> =
        serde_json::from_value(live[0]["expires_at"].clone()).unwrap();
    let asked: chrono::DateTime<Utc> = serde_json::from_value(day).unwrap();
    assert_eq!(expires, asked);
    let mine = private.call("getAnnouncements", params([])).await.unwrap();
    assert_eq!(mine[0]["operator"], "internal-server");
    assert!(
        https_get(tls_port, DOMAIN, &cert)
            .await
            .unwrap()
            .ends_with("hello")
    );
    let stats = stack.public.stats();
    assert_eq!(stats.proxy.announcements_taken, 3);
    assert_eq!(stats.proxy.sni_resolved, 2);

    // The owner withdraws as the original client does (`now - 1 week`): it stops routing and
    // the domain is free for the other operator.
    let ok = tenant_announce(&private, "internal-server", at(-TimeDelta::weeks(1))).await;
    assert_eq!(ok.unwrap(), json!("ok"));
    let live = public.call("getAnnouncements", params([])).await.unwrap();
    assert_eq!(live, json!([]));
    assert!(https_get(tls_port, DOMAIN, &cert).await.is_err());
    let r = operator_announce(&public, &thief, json!([{"domain": DOMAIN}]))
        .await
        .unwrap();
    assert_eq!(r, json!([null]));
    assert_eq!(stack.public.stats().proxy.announcements_withdrawn, 1);

    drop((private, public));
    stack.stop().await;
    backend_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_and_the_lifetime_are_refused_with_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let hyper = RunningHyper::start(PUBLIC, Vec::new()).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.announcements.per_operator_quota = NonZeroUsize::new(2).unwrap();
    settings.announcements.max_lifetime = Duration::from_secs(3600);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = PublicProxy::start(&settings, listener).await.unwrap();
    let handle = proxy.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));
    let client = proxy_client(&pki, PUBLIC, handle.jsonrpc_addr());

    let greedy = operator("hd-1");
    let names: Vec<Value> = (0..3)
        .map(|i| json!({"domain": format!("d{i}{SUFFIX}")}))
        .collect();
    let r = operator_announce(&client, &greedy, json!(names))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!([null, null, {
            "code": 429,
            "message": "announcement quota reached: at most 2 domains per operator"
        }])
    );
    // Another operator is not blocked by the first one's quota.
    let r = operator_announce(&client, &operator("hd-2"), json!([names[2]]))
        .await
        .unwrap();
    assert_eq!(r, json!([null]));
    // Beyond the configured lifetime: the whole call is refused, naming the bound.
    let far = json!([{"domain": format!("x{SUFFIX}"), "expires_at": at(TimeDelta::hours(2))}]);
    let err = rpc_error(operator_announce(&client, &greedy, far).await.unwrap_err());
    assert_eq!(err.code, -32602);
    assert_eq!(
        err.data,
        Some(json!(
            "connections[0].expires_at: timed announcements need to expire in 1 hour or less"
        ))
    );
    assert_eq!(handle.stats().proxy.announcements_over_quota, 1);

    drop((client, handle));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    hyper.stop().await;
}

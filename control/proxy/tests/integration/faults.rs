//! Bad input at the public proxy's data ports (unknown, expired, wrong-side and slow tokens,
//! oversized ClientHellos: each refused by the engine and counted, other pairs unaffected),
//! and the private proxy's refusals (no announcement, announcing to itself, not authorized).
#![allow(clippy::unwrap_used)]

use crate::support::proxy;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy::*;
use serde_json::json;
use tandem_engine::PairKind;
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_net::jsonrpc::params;
use tandem_proxy::{PrivateProxy, PublicProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Writes `bytes` to `addr` and expects the proxy to close the connection without a reply.
async fn refused(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("the proxy closes a refused connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

fn code(e: &ClientError) -> i64 {
    match e {
        ClientError::Rpc { error, .. } => error.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_hellos_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let directory = vec![
        entry("hd-1", &["health-departments"], &[]),
        entry("hd-2", &["health-departments"], &["health-departments"]),
    ];
    let requester = client_info(&directory[0]);
    let mut hyper = RunningHyper::start(PUBLIC, directory).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.accept_timeout = Duration::from_millis(500);
    settings.engine.config.token_deadline = Duration::from_millis(300);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = PublicProxy::start(&settings, listener).await.unwrap();
    let h = proxy.handle();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = rx.await;
    }));
    let client = proxy_client(&pki, PUBLIC, h.jsonrpc_addr());
    let pairing = h.engine_addrs().pairing;
    let tls = h.engine_addrs().tls.unwrap();
    let total = |f: fn(&tandem_engine::CoreStatsSnapshot) -> u64| h.stats().engine_total(f);

    // Unknown token.
    refused(pairing, &[7u8; 32]).await;
    eventually("unknown counted", || total(|c| c.bad_unknown) == 1).await;
    // Slow token: 10 of 32 bytes, then silence past the token deadline.
    refused(pairing, &[1u8; 10]).await;
    eventually("slow token counted", || total(|c| c.preamble_timeouts) == 1).await;
    // Wrong side: the TLS side's token of an SNI pair presented on the pairing port.
    let sni = h.engine().create_pair(PairKind::Sni).unwrap();
    refused(pairing, sni.side_a.as_bytes()).await;
    eventually("wrong side counted", || total(|c| c.bad_wrong_side) == 1).await;
    // Oversized ClientHello: a handshake claiming 1 MiB.
    let mut hello = vec![22, 3, 1, 0x40, 0x00, 1, 0x10, 0x00, 0x00];
    hello.resize(16 * 1024 + 5, 0);
    refused(tls, &hello).await;
    // Not TLS at all.
    refused(tls, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    eventually("bad hellos counted", || total(|c| c.bad_hellos) == 2).await;

    // Expired: the target waits, nobody else comes; after accept_timeout the token is dead.
    let r = client
        .call(
            "requestConnection",
            params([
                ("to", json!("hd-2")),
                ("channel", json!("grpc_server")),
                ("_client", requester.clone()),
            ]),
        )
        .await
        .unwrap();
    let (mut target, _) = hyper.dialed.recv().await.unwrap();
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(30), target.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the waiting side is closed when the pair expires");
    let token = STANDARD.decode(r["token"].as_str().unwrap()).unwrap();
    refused(pairing, &token).await;
    eventually("expired counted", || {
        total(|c| c.bad_expired) == 1 && total(|c| c.expired) >= 1
    })
    .await;

    // Nothing leaked, and a fresh pair still works.
    eventually("nothing waiting", || total(|c| c.waiting) == 0).await;
    h.engine().cancel_pair(sni.id).unwrap();
    let r = client
        .call(
            "requestConnection",
            params([
                ("to", json!("hd-2")),
                ("channel", json!("grpc_server")),
                ("_client", requester),
            ]),
        )
        .await
        .unwrap();
    let (mut target, _) = hyper.dialed.recv().await.unwrap();
    let mut me = TcpStream::connect(pairing).await.unwrap();
    me.write_all(&STANDARD.decode(r["token"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    me.write_all(b"ok!!").await.unwrap();
    target.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok!!");
    assert_eq!(total(|c| c.paired), 1);
    eventually("nothing issued", || total(|c| c.issued_pairs) == 0).await;

    drop((client, h, me, target));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_proxy_refuses_what_it_may_not_do() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let unused = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let private = PrivateProxy::start(&private_settings(dir.path(), hyper.addr, unused), listener)
        .await
        .unwrap();
    let url = format!("http://{}/jsonrpc", private.jsonrpc_addr());
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(private.serve(async {
        let _ = rx.await;
    }));
    let client = JsonRpcClient::new(&url, None, None, CALL_TIMEOUT).unwrap();
    let app = with_proxy_settings(
        entry("internal-server", &[], &[]),
        PRIVATE,
        &[".internal-server.local"],
    );
    let public = client_info(&entry(PUBLIC, &[], &[]));

    let incoming = |domain: &str, token: String| {
        params([
            ("domain", json!(domain)),
            ("token", json!(token)),
            ("endpoint", json!("127.0.0.1:1")),
            ("_client", public.clone()),
        ])
    };
    let err = client
        .call(
            "incomingConnection",
            incoming("foo.internal-server.local", STANDARD.encode([0u8; 32])),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 404, "no announcement: no matching connection");
    let err = client
        .call(
            "incomingConnection",
            incoming("foo.internal-server.local", STANDARD.encode([0u8; 31])),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), -32602, "a token must be 32 bytes");

    let announce = |proxy: &str, domain: &str, who: serde_json::Value| {
        params([
            ("proxy", json!(proxy)),
            ("domain", json!(domain)),
            ("_client", who),
        ])
    };
    let err = client
        .call(
            "announceConnection",
            announce(PRIVATE, "a.internal-server.local", client_info(&app)),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 400, "announcing to ourselves");
    let err = client
        .call(
            "announceConnection",
            announce(PUBLIC, "a.example.com", client_info(&app)),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 403);
    let err = client
        .call(
            "announceConnection",
            announce(
                PUBLIC,
                "a.internal-server.local",
                client_info(&entry("x", &[], &[])),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 403, "no proxy settings: not authorized");
    // The public proxy is unreachable (no route in the fake Hyper): the error reaches the caller.
    let err = client
        .call(
            "announceConnection",
            announce(PUBLIC, "a.internal-server.local", client_info(&app)),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 404);
    assert_eq!(
        client
            .call("getAnnouncements", params([]))
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    drop(client);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    hyper.stop().await;
}

//! The serving kit against hostile clients, through the HTTP server every JSON-RPC listener uses
//! (sd, the Hyper gateway, the proxies, metrics), on mutual TLS as in the dev roles: each attack
//! runs from 127.0.0.x source addresses while a legitimate caller is served. Caps are small here so
//! that attacks stay cheap; the defaults are the same code with larger numbers (RELIABILITY.md).
#![allow(clippy::unwrap_used)]

use crate::support::kit::*;
use tandem_testkit::hostile::*;

use serde_json::json;
use tandem_serving::Rate;

#[tokio::test]
async fn idle_tls_connections_from_one_source_do_not_lock_out_anyone() {
    let kit = Kit::start(config(64, 8, None)).await;
    // 40 idle-after-handshake connections with a valid client certificate, from one address.
    let mut held = idle_tls_flood(src(2), kit.addr, &kit.client, "srv", 40).await;
    assert_eq!(
        held.len(),
        40,
        "each handshake completes before the next evicts it"
    );
    // Others are served, and so is a new client from the attacker's own address: each newcomer
    // evicts that source's oldest idle connection.
    kit.legit_call_from(1).await;
    kit.legit_call_from(2).await;
    let closed = count_closed(&mut held).await;
    assert!(
        closed >= 40 - 8,
        "only the source's cap stays open: {closed} of 40 closed"
    );
    assert!(kit.count("evicted_source_full") >= 32);
    kit.stop().await;
}

#[tokio::test]
async fn a_flood_from_many_sources_evicts_the_oldest_idle_connections_first() {
    let kit = Kit::start(config(32, 8, None)).await;
    let mut floods = Vec::new();
    for last in 10..18 {
        floods.push(idle_tls_flood(src(last), kit.addr, &kit.client, "srv", 6).await);
    }
    // 48 idle connections for 32 slots: the oldest 16 (and then one per newcomer) were evicted.
    kit.legit_call_from(1).await;
    assert!(
        kit.count("evicted_full") >= 17,
        "{}",
        kit.count("evicted_full")
    );
    let oldest_closed = count_closed(&mut floods[0]).await;
    assert_eq!(
        oldest_closed, 6,
        "the first source's connections were the oldest"
    );
    let newest_closed = count_closed(&mut floods[7]).await;
    assert_eq!(
        newest_closed, 0,
        "the newest idle connections keep their slots"
    );
    kit.stop().await;
}

#[tokio::test]
async fn a_connection_that_completed_a_request_is_never_evicted() {
    let kit = Kit::start(config(8, 8, None)).await;
    let mut proven = Caller::connect(src(1), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    assert_eq!(proven.call("ping", json!({})).await.unwrap().0, 200);
    let _flood = idle_tls_flood(src(3), kit.addr, &kit.client, "srv", 20).await;
    // The same keep-alive connection still answers after the flood churned every other slot.
    assert_eq!(proven.call("again", json!({})).await.unwrap().0, 200);
    kit.stop().await;
}

#[tokio::test]
async fn silent_tcp_connections_from_many_sources_do_not_lock_out_anyone() {
    let kit = Kit::start(config(32, 8, None)).await;
    let mut all = Vec::new();
    for last in 20..30 {
        all.extend(silent_flood(src(last), kit.addr, 10).await);
    }
    let attack = {
        let addr = kit.addr;
        // The attack goes on while the legitimate call is made.
        tokio::spawn(async move { silent_flood(src(31), addr, 50).await })
    };
    kit.legit_call_from(1).await;
    let more = attack.await.unwrap();
    assert!(!more.is_empty());
    assert!(kit.count("evicted_full") + kit.count("evicted_source_full") > 0);
    kit.stop().await;
}

#[tokio::test]
async fn a_fast_opener_is_refused_past_its_accept_rate() {
    let rate = Rate {
        per_second: 1,
        burst: 5,
    };
    let mut config = config(64, 64, Some(rate));
    // Admitted silent connections end at the handshake deadline, so every one of them closes.
    config.deadlines.handshake = SHORT;
    let kit = Kit::start(config).await;
    let mut conns = silent_flood(src(2), kit.addr, 30).await;
    for conn in conns.iter_mut() {
        closed_by_server(conn).await.unwrap();
    }
    // The burst (and a refill or two) was admitted; the rest was closed at accept.
    let refused = kit.count("source_rate");
    assert!(refused >= 20, "{refused} of 30 refused at accept");
    assert_eq!(refused + kit.count("handshake_timeout"), 30);
    kit.legit_call_from(3).await;
    kit.stop().await;
}

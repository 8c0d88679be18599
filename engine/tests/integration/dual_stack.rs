//! A data port on several addresses (a host name resolving to both families), on both drivers:
//! every core serves one socket per address on the same port, a pair's sides meet across the
//! families, `[::]` beside `0.0.0.0` binds once, and a binary upgrade carries every socket.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use tandem_engine::{Driver, Engine, EngineConfig, PairKind, RefuseAll};

both_drivers!(
    a_port_on_both_loopbacks_pairs_across_the_families,
    the_any_addresses_of_both_families_bind_one_dual_stack_socket,
    an_upgrade_carries_every_address_of_a_port,
);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Both ports on 127.0.0.1 and ::1.
fn both_loopbacks(driver: Driver) -> EngineConfig {
    EngineConfig {
        pairing_addr: sa("127.0.0.1:0"),
        pairing_more: vec![sa("[::1]:0")],
        tls_addr: Some(sa("127.0.0.1:0")),
        tls_more: vec![sa("[::1]:0")],
        ..config(driver)
    }
}

fn a_port_on_both_loopbacks_pairs_across_the_families(driver: Driver) {
    let (h, _rx) = start(both_loopbacks(driver));
    let (pairing, tls) = h.port_addrs();
    let p = h.local_addrs().pairing;
    assert!(p.is_ipv4(), "the primary is the configured address: {p}");
    assert_eq!(
        pairing,
        vec![p, SocketAddr::new(sa("[::1]:0").ip(), p.port())]
    );
    let t = h.local_addrs().tls.unwrap();
    assert_eq!(tls, vec![t, SocketAddr::new(sa("[::1]:0").ip(), t.port())]);
    // Several pairs, so that both cores' members of both addresses serve.
    for _ in 0..8 {
        let ticket = h.create_pair(PairKind::Direct).unwrap();
        let mut a = dial(pairing[0], &ticket.side_a);
        let mut b = dial(pairing[1], &ticket.side_b);
        ping_pong(&mut a, &mut b);
    }
    h.shutdown().unwrap();
}

fn the_any_addresses_of_both_families_bind_one_dual_stack_socket(driver: Driver) {
    let cfg = EngineConfig {
        pairing_addr: sa("0.0.0.0:0"),
        pairing_more: vec![sa("[::]:0"), sa("[::]:0")],
        ..config(driver)
    };
    let (h, _rx) = start(cfg);
    let (pairing, _) = h.port_addrs();
    assert_eq!(pairing.len(), 1, "{pairing:?}");
    assert!(pairing[0].ip().is_unspecified() && pairing[0].is_ipv6());
    let port = pairing[0].port();
    let ticket = h.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(sa(&format!("127.0.0.1:{port}")), &ticket.side_a);
    let mut b = dial(sa(&format!("[::1]:{port}")), &ticket.side_b);
    ping_pong(&mut a, &mut b);
    h.shutdown().unwrap();
}

fn an_upgrade_carries_every_address_of_a_port(driver: Driver) {
    let (old, _old_events) = start(both_loopbacks(driver));
    let (pairing, tls) = old.port_addrs();
    let bundle = old.export(STEP).unwrap();
    let mut received = crate::handover::through_a_socket(&bundle);
    drop(bundle);
    old.shutdown().unwrap();
    let (new, _events, adopted) =
        Engine::start_inherited(both_loopbacks(driver), Arc::new(RefuseAll), &mut received)
            .unwrap();
    // Two cores, two ports, two addresses each.
    assert_eq!(adopted.listeners, 8);
    assert_eq!(new.port_addrs(), (pairing.clone(), tls));
    let ticket = new.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(pairing[1], &ticket.side_a);
    let mut b = dial(pairing[0], &ticket.side_b);
    ping_pong(&mut a, &mut b);
    new.shutdown().unwrap();
}

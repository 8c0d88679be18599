//! SNI floods on both drivers: silent ClientHellos that name an announced domain each make the
//! resolver create a pair whose private side joins (and then holds a connection slot). The SNI
//! budgets (`sni_pairs_per_source`, `sni_pairs_per_domain`) count open SNI pairs until they
//! close: past them a hello is closed at once, counted, and never reaches the resolver, while
//! a legitimate client (another source, or another domain) is served; a closed pair gives its
//! slot back. On two cores each core holds its share, SNI pairs stay on the accepting core.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use abuse_support::*;
use tandem_engine::{ClientHelloInfo, Driver, EngineConfig, EngineHandle, PairKind, Token};

abuse_both_drivers!(
    silent_hellos_from_one_source_are_refused_past_its_budget_another_source_is_served,
    silent_hellos_for_one_domain_are_refused_past_its_budget_another_domain_is_served,
    two_cores_hold_no_more_than_the_engine_wide_source_budget,
);

/// The announced domains the resolver routes.
const DOMAIN_A: &str = "a.internal-server.local";
const DOMAIN_B: &str = "b.internal-server.local";
/// The small budget the tests set (the other one is large).
const BUDGET: u32 = 4;
/// Hellos past the budget in each flood.
const PAST: u64 = 6;

/// An engine whose resolver routes [`DOMAIN_A`] and [`DOMAIN_B`], publishing each target token.
struct Routed {
    h: EngineHandle,
    issued: Arc<Mutex<Vec<Token>>>,
}

/// A routed hello: the TLS client and the private side that joined its pair.
struct Served {
    client: TcpStream,
    private: TcpStream,
}

impl Routed {
    fn start(driver: Driver, cores: Vec<usize>, per_source: u32, per_domain: u32) -> Self {
        let cell: Arc<OnceLock<EngineHandle>> = Arc::new(OnceLock::new());
        let issued: Arc<Mutex<Vec<Token>>> = Arc::default();
        let (c, i) = (cell.clone(), issued.clone());
        let resolver = move |hello: &ClientHelloInfo, _: SocketAddr| {
            let name = hello.sni.as_deref()?;
            if name != DOMAIN_A && name != DOMAIN_B {
                return None;
            }
            let t = c.get()?.create_pair(PairKind::Sni).ok()?;
            i.lock().unwrap().push(t.side_b);
            Some(t.side_a)
        };
        let cfg = EngineConfig {
            cores: Some(cores),
            tls_addr: Some("127.0.0.1:0".parse().unwrap()),
            sni_pairs_per_source: per_source,
            sni_pairs_per_domain: per_domain,
            // Nothing expires or idles out during a test: only the budgets refuse.
            pair_ttl: Duration::from_secs(600),
            idle_timeout: None,
            bad_token_limit: u32::MAX,
            ..config(driver)
        };
        let (h, _rx) = start_with(cfg, Arc::new(resolver));
        cell.set(h.clone()).ok().unwrap();
        Routed { h, issued }
    }

    fn refusals(&self) -> u64 {
        total(&self.h, |s| s.sni_source_refusals) + total(&self.h, |s| s.sni_domain_refusals)
    }

    fn held(&self) -> u64 {
        total(&self.h, |s| s.sni_pairs_held)
    }

    /// Sends a hello naming `domain` from 127.0.0.`host` and waits (bounded) for the engine's
    /// verdict. Routed: the private side joins with its token and receives the hello, and the
    /// client then stays silent. Refused: the engine closes the client, without a byte.
    fn hello(&self, host: u8, domain: &str) -> Option<Served> {
        let before = (self.issued.lock().unwrap().len(), self.refusals());
        let hello = client_hello(domain);
        let mut client = send_from(host, self.h.local_addrs().tls.unwrap(), &hello);
        let mut routed = None;
        eventually("the hello routed or refused", || {
            let issued = self.issued.lock().unwrap();
            if issued.len() > before.0 {
                routed = Some(issued[before.0]);
            }
            routed.is_some() || self.refusals() > before.1
        });
        let Some(token) = routed else {
            assert_closed_by_engine(&mut client);
            return None;
        };
        let mut private = send_from(1, self.h.local_addrs().pairing, token.as_bytes());
        let mut replayed = vec![0u8; hello.len()];
        private.read_exact(&mut replayed).unwrap();
        assert!(replayed == hello, "the hello replayed whole");
        Some(Served { client, private })
    }
}

impl Served {
    /// The pair relays both ways (a TLS client being served).
    fn relays(&mut self) {
        self.private.write_all(b"server hello").unwrap();
        let mut buf = [0u8; 12];
        self.client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"server hello");
        self.client.write_all(b"finished").unwrap();
        let mut buf = [0u8; 8];
        self.private.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"finished");
    }
}

/// Reads until the engine closes `s` (generous bound: a hang fails the test); no byte allowed.
fn assert_closed_by_engine(s: &mut TcpStream) {
    s.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the engine to close the refused hello, got {other:?}"),
    }
}

fn silent_hellos_from_one_source_are_refused_past_its_budget_another_source_is_served(
    driver: Driver,
) {
    // One core: its share is the whole budget, so "the fifth is refused" is exact.
    let e = Routed::start(driver, vec![0], BUDGET, 1000);
    let mut flood: Vec<Served> = (0..BUDGET)
        .map(|_| e.hello(2, DOMAIN_A).expect("within the budget: routed"))
        .collect();
    assert_eq!(
        e.held(),
        u64::from(BUDGET),
        "paired and relaying, still counted"
    );
    for _ in 0..PAST {
        assert!(e.hello(2, DOMAIN_A).is_none(), "past the source budget");
    }
    assert_eq!(total(&e.h, |s| s.sni_source_refusals), PAST);
    assert_eq!(total(&e.h, |s| s.sni_domain_refusals), 0);
    assert_eq!(
        e.issued.lock().unwrap().len(),
        BUDGET as usize,
        "no pair made"
    );
    assert_eq!(
        total(&e.h, |s| s.bad_hellos),
        0,
        "a budget refusal is no bad hello"
    );

    // A legitimate client from another source, same domain: served.
    let mut legit = e.hello(3, DOMAIN_A).expect("another source is routed");
    legit.relays();

    // A flood pair that closes gives its slot back: the source is routed again.
    drop(flood.pop());
    eventually("the closed pair's slot returned", || {
        e.held() == u64::from(BUDGET)
    });
    e.hello(2, DOMAIN_A).expect("routed again").relays();
    assert_eq!(total(&e.h, |s| s.sni_source_refusals), PAST);
    e.h.shutdown().unwrap();
    assert_eq!(e.held(), 0, "drain returned every slot");
}

fn silent_hellos_for_one_domain_are_refused_past_its_budget_another_domain_is_served(
    driver: Driver,
) {
    let e = Routed::start(driver, vec![0], 1000, BUDGET);
    // A flood of one domain from many sources (127.0.0.10, .11, ...).
    let _flood: Vec<Served> = (0..BUDGET as u8)
        .map(|i| {
            e.hello(10 + i, DOMAIN_A)
                .expect("within the budget: routed")
        })
        .collect();
    for i in 0..PAST as u8 {
        assert!(
            e.hello(20 + i, DOMAIN_A).is_none(),
            "past the domain budget"
        );
    }
    assert_eq!(total(&e.h, |s| s.sni_domain_refusals), PAST);
    assert_eq!(total(&e.h, |s| s.sni_source_refusals), 0);
    assert_eq!(
        e.issued.lock().unwrap().len(),
        BUDGET as usize,
        "no pair made"
    );

    // A legitimate client of another domain: served (the flooded domain stays full).
    let mut other = e.hello(3, DOMAIN_B).expect("another domain is routed");
    other.relays();
    assert!(e.hello(3, DOMAIN_A).is_none(), "the flooded domain is full");
    assert_eq!(e.held(), u64::from(BUDGET) + 1);
    e.h.shutdown().unwrap();
}

fn two_cores_hold_no_more_than_the_engine_wide_source_budget(driver: Driver) {
    // 8 per source over 2 cores: each core holds 4. A pair placed on the other core would
    // give its slot back at the hand-off (and would be placed there by load half the time),
    // so `held` below also shows SNI pairs stay on their accepting core.
    const TWO_CORE_BUDGET: u32 = 8;
    let e = Routed::start(driver, vec![0, 1], TWO_CORE_BUDGET, 1000);
    let tries = 30;
    let served: Vec<Served> = (0..tries).filter_map(|_| e.hello(2, DOMAIN_A)).collect();
    let routed = served.len() as u64;
    assert!(
        (1..=u64::from(TWO_CORE_BUDGET)).contains(&routed),
        "{routed} routed of {tries}"
    );
    assert_eq!(e.refusals(), tries - routed);
    assert_eq!(e.held(), routed, "every routed pair holds its slot");
    for core in e.h.stats() {
        assert!(
            core.sni_pairs_held <= u64::from(TWO_CORE_BUDGET / 2),
            "{core:?}"
        );
    }
    e.hello(3, DOMAIN_A)
        .expect("another source is routed")
        .relays();
    e.h.shutdown().unwrap();
}

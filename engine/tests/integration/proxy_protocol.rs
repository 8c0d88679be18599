//! The PROXY protocol on both data ports, on both drivers: a trusted balancer (127.0.0.9) puts
//! a v2 or v1 header before the token or ClientHello, and the client address it carries is the
//! one the accept rate, the SNI resolver and the bad-preamble limiter see; a header from an
//! untrusted source, a trusted connection without one, truncated and oversized headers are
//! refused and counted; a header dripped one byte a second is cut by its deadline while a
//! client is served; everything also over `::1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abuse_support::*;
use tandem_engine::{AcceptRate, ClientHelloInfo, Driver, EngineConfig, EngineHandle, PairKind};
use tandem_proxy_header::{encode_v1, encode_v2, encode_v2_local};
use tandem_types::ProxyProtocol;

abuse_both_drivers!(
    a_trusted_balancer_pairs_with_v2_and_v1_headers_limited_by_the_client_address,
    the_sni_resolver_sees_the_client_address_of_a_proxied_hello,
    a_header_from_an_untrusted_source_is_refused_and_counted,
    bad_truncated_oversized_and_missing_headers_from_the_balancer_are_refused,
    a_header_dripped_one_byte_a_second_is_cut_by_its_deadline_while_a_client_is_served,
    proxied_pairs_work_over_ipv6_loopback,
);

/// The trusted balancer's loopback address (127.0.0.`BALANCER`).
const BALANCER: u8 = 9;
/// The header deadline of the drip test (short; the other tests use [`STEP`]).
const SHORT: Duration = Duration::from_secs(1);

fn trusted(nets: &[&str], deadline: Duration) -> Option<ProxyProtocol> {
    let nets = nets.iter().map(|n| n.parse().unwrap()).collect();
    Some(ProxyProtocol::new(nets, deadline).unwrap())
}

/// Two cores, PROXY headers from 127.0.0.9 and ::1, long preamble deadlines, the bad-preamble
/// limiter off unless a test sets it.
fn proxied(driver: Driver, deadline: Duration) -> EngineConfig {
    EngineConfig {
        tls_addr: Some("127.0.0.1:0".parse().unwrap()),
        token_deadline: STEP,
        hello_deadline: STEP,
        bad_token_limit: u32::MAX,
        proxy_protocol: trusted(&["127.0.0.9/32", "::1/128"], deadline),
        ..config(driver)
    }
}

fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40_000 + u16::from(n)))
}

/// The balancer's connection to `to` for `client`: a v2 header, then `rest`.
fn via_balancer(to: SocketAddr, client: SocketAddr, rest: &[u8]) -> TcpStream {
    let mut bytes = encode_v2(client, to);
    bytes.extend_from_slice(rest);
    send_from(BALANCER, to, &bytes)
}

/// `a` and `b` relay both ways.
fn relays(a: &mut TcpStream, b: &mut TcpStream) {
    a.set_read_timeout(Some(STEP)).unwrap();
    b.set_read_timeout(Some(STEP)).unwrap();
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

/// Reads until the engine closes `s`; no byte allowed.
fn assert_closed(s: &mut TcpStream) {
    closed_within(s, STEP);
}

fn a_trusted_balancer_pairs_with_v2_and_v1_headers_limited_by_the_client_address(driver: Driver) {
    let cfg = EngineConfig {
        // One connection per client per 10 minutes on the pairing port (engine-wide, two cores:
        // a core admits one each).
        accept_rates: vec![AcceptRate {
            window: Duration::from_secs(600),
            limit: 1,
        }],
        cores: Some(vec![0]),
        ..proxied(driver, STEP)
    };
    let (h, _rx) = start(cfg);
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = via_balancer(addr, client(1), t.side_a.as_bytes());
    let mut line = encode_v1(client(2), addr).into_bytes();
    line.extend_from_slice(t.side_b.as_bytes());
    let mut b = send_from(BALANCER, addr, &line);
    relays(&mut a, &mut b);
    assert_eq!(total(&h, |s| s.proxy_headers), 2);
    // Client 1 used its rate; the balancer did not (client 3 through it is admitted).
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut again = via_balancer(addr, client(1), t.side_a.as_bytes());
    assert_closed(&mut again);
    assert_eq!(total(&h, |s| s.rate_refusals), 1);
    let mut c = via_balancer(addr, client(3), t.side_a.as_bytes());
    let mut d = send_from(4, addr, t.side_b.as_bytes());
    relays(&mut c, &mut d);
    // A LOCAL header (the balancer's health check) counts as the balancer itself.
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut local = encode_v2_local().to_vec();
    local.extend_from_slice(t.side_a.as_bytes());
    let mut e = send_from(BALANCER, addr, &local);
    let mut f = send_from(5, addr, t.side_b.as_bytes());
    relays(&mut e, &mut f);
}

fn the_sni_resolver_sees_the_client_address_of_a_proxied_hello(driver: Driver) {
    let seen: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let s = seen.clone();
    let resolver = move |_: &ClientHelloInfo, peer: SocketAddr| {
        s.lock().unwrap().push(peer);
        None
    };
    let (h, _rx) = start_with(proxied(driver, STEP), Arc::new(resolver));
    let tls = h.local_addrs().tls.unwrap();
    let hello = client_hello("a.internal-server.local");
    let mut c = via_balancer(tls, client(7), &hello);
    assert_closed(&mut c);
    let mut line = encode_v1(client(8), tls).into_bytes();
    line.extend_from_slice(&hello);
    let mut c = send_from(BALANCER, tls, &line);
    assert_closed(&mut c);
    assert_eq!(*seen.lock().unwrap(), vec![client(7), client(8)]);
}

fn a_header_from_an_untrusted_source_is_refused_and_counted(driver: Driver) {
    let cfg = EngineConfig {
        bad_token_limit: 20,
        ..proxied(driver, STEP)
    };
    let (h, _rx) = start_with(cfg, Arc::new(|_: &ClientHelloInfo, _: SocketAddr| None));
    let addrs = h.local_addrs();
    let t = h.create_pair(PairKind::Direct).unwrap();
    // 127.0.0.3 is not trusted: its header (however well formed) is a bad connection.
    let mut bytes = encode_v2(client(1), addrs.pairing);
    bytes.extend_from_slice(t.side_a.as_bytes());
    let mut s = send_from(3, addrs.pairing, &bytes);
    assert_closed(&mut s);
    let mut line = encode_v1(client(1), addrs.tls.unwrap()).into_bytes();
    line.extend_from_slice(&client_hello("a.internal-server.local"));
    let mut s = send_from(3, addrs.tls.unwrap(), &line);
    assert_closed(&mut s);
    assert_eq!(total(&h, |s| s.proxy_untrusted), 2);
    assert_eq!(total(&h, |s| s.proxy_headers), 0);
    // The pair was not touched: its tokens still pair from anywhere.
    let mut a = send_from(3, addrs.pairing, t.side_a.as_bytes());
    let mut b = send_from(4, addrs.pairing, t.side_b.as_bytes());
    relays(&mut a, &mut b);
}

fn bad_truncated_oversized_and_missing_headers_from_the_balancer_are_refused(driver: Driver) {
    let (h, _rx) = start(proxied(driver, STEP));
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    // No header: a token straight from the balancer.
    let mut s = send_from(BALANCER, addr, t.side_a.as_bytes());
    assert_closed(&mut s);
    // Oversized: a v2 header declaring 65535 bytes (refused at its 16-byte fixed part).
    let mut big = encode_v2(client(1), addr);
    big[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let mut s = send_from(BALANCER, addr, &big[..16]);
    assert_closed(&mut s);
    // Malformed v1.
    let mut s = send_from(BALANCER, addr, b"PROXY TCP4 192.0.2.1 nope 1 2\r\n");
    assert_closed(&mut s);
    assert_eq!(total(&h, |s| s.proxy_bad_headers), 3);
    // Truncated: half a header, then the balancer closes.
    let header = encode_v2(client(1), addr);
    let mut s = send_from(BALANCER, addr, &header[..20]);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed(&mut s);
    eventually("the truncated header counted", || {
        total(&h, |s| s.preamble_aborted) == 1
    });
    assert_eq!(total(&h, |s| s.proxy_headers), 0);
    // None of it touched the pair or blocked the balancer.
    let mut a = via_balancer(addr, client(1), t.side_a.as_bytes());
    let mut b = via_balancer(addr, client(2), t.side_b.as_bytes());
    relays(&mut a, &mut b);
}

fn a_header_dripped_one_byte_a_second_is_cut_by_its_deadline_while_a_client_is_served(
    driver: Driver,
) {
    let (h, _rx) = start(proxied(driver, SHORT));
    let addr = h.local_addrs().pairing;
    let header = encode_v2(client(1), addr);
    let mut drip = connect_from(BALANCER, addr);
    let dripper = {
        let mut drip = drip.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in header {
                if drip.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let started = Instant::now();
    // Meanwhile a client through the same balancer pairs and relays.
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = via_balancer(addr, client(2), t.side_a.as_bytes());
    let mut b = via_balancer(addr, client(3), t.side_b.as_bytes());
    relays(&mut a, &mut b);
    assert_closed(&mut drip);
    assert!(
        started.elapsed() >= SHORT.saturating_sub(Duration::from_millis(100)),
        "closed before the header deadline"
    );
    assert_eq!(total(&h, |s| s.proxy_header_timeouts), 1);
    dripper.join().unwrap();
}

fn proxied_pairs_work_over_ipv6_loopback(driver: Driver) {
    let cfg = EngineConfig {
        pairing_addr: "[::1]:0".parse().unwrap(),
        tls_addr: Some("[::1]:0".parse().unwrap()),
        ..proxied(driver, STEP)
    };
    let (h, _rx) = start(cfg);
    let addrs = h.local_addrs();
    assert!(addrs.pairing.is_ipv6() && addrs.tls.unwrap().is_ipv6());
    let t = h.create_pair(PairKind::Direct).unwrap();
    // ::1 is trusted: an IPv6 client through it, and a LOCAL health check.
    let v6_client: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let mut bytes = encode_v2(v6_client, addrs.pairing);
    bytes.extend_from_slice(t.side_a.as_bytes());
    let mut a = TcpStream::connect(addrs.pairing).unwrap();
    a.write_all(&bytes).unwrap();
    let mut local = encode_v2_local().to_vec();
    local.extend_from_slice(t.side_b.as_bytes());
    let mut b = TcpStream::connect(addrs.pairing).unwrap();
    b.write_all(&local).unwrap();
    relays(&mut a, &mut b);
    assert_eq!(total(&h, |s| s.proxy_headers), 2);
}

/// An engine with PROXY protocol off serves plain pairs over `::1` (every data port binds IPv6).
#[test]
fn plain_pairs_work_over_ipv6_loopback() {
    let cfg = EngineConfig {
        pairing_addr: "[::1]:0".parse().unwrap(),
        tls_addr: Some("[::1]:0".parse().unwrap()),
        ..config(Driver::Auto)
    };
    let h: EngineHandle = start(cfg).0;
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = TcpStream::connect(addr).unwrap();
    a.write_all(t.side_a.as_bytes()).unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    b.write_all(t.side_b.as_bytes()).unwrap();
    relays(&mut a, &mut b);
}

/// An engine on `[::]` serves both families, and an IPv4 client is its IPv4 address (not
/// `::ffff:a.b.c.d`) for the SNI resolver.
#[test]
fn a_dual_stack_engine_serves_both_families_and_sees_ipv4_clients_as_ipv4() {
    let seen: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let s = seen.clone();
    let resolver = move |_: &ClientHelloInfo, peer: SocketAddr| {
        s.lock().unwrap().push(peer);
        None
    };
    let cfg = EngineConfig {
        pairing_addr: "[::]:0".parse().unwrap(),
        tls_addr: Some("[::]:0".parse().unwrap()),
        ..config(Driver::Auto)
    };
    let (h, _rx) = start_with(cfg, Arc::new(resolver));
    let tls_port = h.local_addrs().tls.unwrap().port();
    let hello = client_hello("a.internal-server.local");
    for client in ["127.0.0.1", "::1"] {
        let ip: std::net::IpAddr = client.parse().unwrap();
        let mut c = TcpStream::connect((ip, tls_port)).unwrap();
        c.write_all(&hello).unwrap();
        closed_within(&mut c, STEP);
    }
    let peers: Vec<_> = seen.lock().unwrap().iter().map(|p| p.ip()).collect();
    assert_eq!(
        peers,
        [
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    let port = h.local_addrs().pairing.port();
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.write_all(t.side_a.as_bytes()).unwrap();
    let mut b = TcpStream::connect(("::1", port)).unwrap();
    b.write_all(t.side_b.as_bytes()).unwrap();
    relays(&mut a, &mut b);
}

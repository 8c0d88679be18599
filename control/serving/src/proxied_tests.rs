//! The kit's accept loop with the PROXY protocol on: a trusted balancer's v2 and v1 headers make
//! the client the connection's peer (admission counts it, the server sees it) and the bytes after
//! the header reach the server; an untrusted peer is served as itself, and a header from it
//! is refused and counted; bad and late
//! headers are closed and counted while a client is served; over IPv4 and IPv6 loopback.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_proxy_header::{encode_v1, encode_v2};
use tandem_types::{ProxyProtocol, ServingConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::{Acceptor, Admission, Handshake, ServingMetrics};

/// Bound for anything that must complete (a loaded machine is slow; a hang fails).
const COMPLETES: Duration = Duration::from_secs(30);
const NAME: &str = "pp";

/// A listener on `bind` trusting `trusted` with header deadline `deadline`; each served
/// connection reports its peer and first 5 bytes.
async fn serve(
    bind: &str,
    trusted: &[&str],
    deadline: Duration,
) -> (
    SocketAddr,
    Admission,
    mpsc::Receiver<(SocketAddr, [u8; 5])>,
    oneshot::Sender<()>,
) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let nets = trusted.iter().map(|n| n.parse().unwrap()).collect();
    let config = ServingConfig {
        proxy_protocol: Some(ProxyProtocol::new(nets, deadline).unwrap()),
        ..ServingConfig::default()
    };
    let admission = Admission::new(NAME, config, ServingMetrics::default());
    let (tx, rx) = mpsc::channel(16);
    let (stop, stopped) = oneshot::channel::<()>();
    let acceptor = Acceptor::new(listener, admission.clone(), Handshake::None);
    tokio::spawn(acceptor.serve(
        async {
            let _ = stopped.await;
        },
        move |mut io, peer, _slot| {
            let tx = tx.clone();
            async move {
                // Reads as servers do (whatever arrived, into a roomy buffer) until 5 bytes.
                let mut buf = [0u8; 64];
                let mut got = 0;
                while got < 5 {
                    match io.read(&mut buf[got..]).await {
                        Ok(n) if n > 0 => got += n,
                        _ => return,
                    }
                }
                let mut first = [0u8; 5];
                first.copy_from_slice(&buf[..5]);
                let _ = tx.send((peer, first)).await;
            }
        },
    ));
    (addr, admission, rx, stop)
}

async fn send(to: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

async fn next(rx: &mut mpsc::Receiver<(SocketAddr, [u8; 5])>) -> (SocketAddr, [u8; 5]) {
    tokio::time::timeout(COMPLETES, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

/// Waits (bounded) until the server closes `s`.
async fn closed(s: &mut TcpStream) {
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(COMPLETES, s.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "server sent bytes: {n:?}");
}

fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 50_000))
}

#[tokio::test]
async fn trusted_headers_name_the_client_and_leave_the_stream() {
    let (addr, admission, mut rx, _stop) = serve("127.0.0.1:0", &["127.0.0.0/8"], COMPLETES).await;
    let mut v2 = encode_v2(client(1), addr);
    v2.extend_from_slice(b"hello");
    let _a = send(addr, &v2).await;
    assert_eq!(next(&mut rx).await, (client(1), *b"hello"));
    let mut v1 = encode_v1(client(2), addr).into_bytes();
    v1.extend_from_slice(b"world");
    let _b = send(addr, &v1).await;
    assert_eq!(next(&mut rx).await, (client(2), *b"world"));
    let m = admission.metrics();
    assert_eq!(m.get(NAME, "proxy_header"), 2);
    assert_eq!(m.get(NAME, "admitted"), 2);
}

#[tokio::test]
async fn an_untrusted_peer_is_served_as_itself_and_a_header_from_it_is_refused() {
    let (addr, admission, mut rx, _stop) = serve("127.0.0.1:0", &["192.0.2.0/24"], COMPLETES).await;
    let s = send(addr, b"plain").await;
    assert_eq!(next(&mut rx).await, (s.local_addr().unwrap(), *b"plain"));
    for header in [
        encode_v2(client(1), addr),
        encode_v1(client(1), addr).into_bytes(),
    ] {
        let mut s = send(addr, &header).await;
        closed(&mut s).await;
    }
    let m = admission.metrics();
    assert_eq!(m.get(NAME, "proxy_untrusted"), 2);
    assert_eq!(m.get(NAME, "proxy_header"), 0);
}

#[tokio::test]
async fn bad_and_late_headers_are_closed_and_counted_while_a_client_is_served() {
    let deadline = Duration::from_millis(500);
    let (addr, admission, mut rx, _stop) = serve("127.0.0.1:0", &["127.0.0.1"], deadline).await;
    let mut bad = send(addr, b"GET / HTTP/1.1\r\n\r\n").await;
    closed(&mut bad).await;
    // A header dripped one byte a second: cut at its deadline.
    let header = encode_v2(client(1), addr);
    let mut drip = TcpStream::connect(addr).await.unwrap();
    drip.write_all(&header[..1]).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut v2 = encode_v2(client(2), addr);
    v2.extend_from_slice(b"fresh");
    let _good = send(addr, &v2).await;
    assert_eq!(next(&mut rx).await, (client(2), *b"fresh"));
    let mut i = 1;
    let cut = loop {
        let mut buf = [0u8; 1];
        tokio::select! {
            r = drip.read(&mut buf) => break r,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if i < header.len() && drip.write_all(&header[i..=i]).await.is_err() {
            break Ok(0);
        }
        i += 1;
        assert!(started.elapsed() < COMPLETES, "never cut");
    };
    assert!(matches!(cut, Ok(0) | Err(_)));
    assert!(started.elapsed() >= deadline - Duration::from_millis(50));
    let m = admission.metrics();
    assert_eq!(m.get(NAME, "proxy_bad_header"), 1);
    assert_eq!(m.get(NAME, "proxy_header_timeout"), 1);
    assert_eq!(m.get(NAME, "admitted"), 1);
}

#[tokio::test]
async fn headers_are_read_over_ipv6_loopback() {
    let (addr, _admission, mut rx, _stop) = serve("[::1]:0", &["::1"], COMPLETES).await;
    let v6: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
    let mut v2 = encode_v2(v6, addr);
    v2.extend_from_slice(b"six!!");
    let _a = send(addr, &v2).await;
    assert_eq!(next(&mut rx).await, (v6, *b"six!!"));
}

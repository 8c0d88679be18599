//! The PROXY protocol through the whole TLS passthrough path: a client behind a trusted balancer
//! (127.0.0.9, sending a v2 header) reaches the public proxy's TLS port; the SNI resolver sees
//! the client's address, passes it to the private proxy in `incomingConnection`, and the private
//! proxy (`send_proxy_v2`) starts its connection to the backend with a v2 header naming that
//! client. A direct client's own address arrives the same way. The backend parses the header
//! itself (bytes per the specification), then serves TLS.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use crate::support::sni;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use proxy::*;
use serde_json::json;
use sni::{DOMAIN, announce, https_get, https_get_over, stack_edited};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

/// The trusted balancer's address.
const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

/// A TLS backend that first reads a PROXY v2 header (TCP over IPv4 or IPv6) and reports its
/// source address, then answers one request with `hello`.
async fn proxied_backend(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> (SocketAddr, mpsc::Receiver<SocketAddr>) {
    let config = rustls::ServerConfig::builder_with_provider(tandem_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut fixed = [0u8; 16];
            stream.read_exact(&mut fixed).await.unwrap();
            assert_eq!(&fixed[..12], b"\r\n\r\n\0\r\nQUIT\n", "v2 signature");
            assert_eq!(fixed[12], 0x21, "version 2, PROXY");
            let mut block = vec![0u8; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
            stream.read_exact(&mut block).await.unwrap();
            let source = match fixed[13] {
                0x11 => {
                    let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
                    SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([block[8], block[9]]))
                }
                0x21 => {
                    let ip: [u8; 16] = block[..16].try_into().unwrap();
                    SocketAddr::new(ip.into(), u16::from_be_bytes([block[32], block[33]]))
                }
                other => panic!("family {other:#x}"),
            };
            tx.send(source).await.unwrap();
            let mut tls = acceptor.accept(stream).await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                )
                .await;
            let _ = tls.shutdown().await;
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_receives_the_client_address_through_a_balancer_and_directly() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(DOMAIN);
    let (backend, mut sources) = proxied_backend(cert.clone(), key).await;
    let trusted = tandem_types::ProxyProtocol::new(
        vec!["127.0.0.9".parse().unwrap()],
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let (stack, private) = stack_edited(
        dir.path(),
        backend,
        |public| public.engine.config.proxy_protocol = Some(trusted),
        |private| private.internal_endpoint.send_proxy_v2 = true,
    )
    .await;
    assert_eq!(announce(&private, DOMAIN).await.unwrap(), json!("ok"));
    let tls_port = stack.public.engine_addrs().tls.unwrap();

    // Through the balancer: its v2 header names 192.0.2.33:4444.
    let client: SocketAddr = "192.0.2.33:4444".parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(BALANCER.into(), 0)).unwrap();
    let mut stream = socket.connect(tls_port).await.unwrap();
    stream
        .write_all(&tandem_proxy_header::encode_v2(client, tls_port))
        .await
        .unwrap();
    let body = https_get_over(stream, DOMAIN, &cert).await.unwrap();
    assert!(body.ends_with("hello"), "{body}");
    assert_eq!(sources.recv().await.unwrap(), client);

    // Directly (127.0.0.1 is not trusted, so no header is read): the socket's own address.
    let body = https_get(tls_port, DOMAIN, &cert).await.unwrap();
    assert!(body.ends_with("hello"), "{body}");
    let direct = sources.recv().await.unwrap();
    assert_eq!(direct.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    stack.stop().await;
}

//! The fleet test bed: an announcement made through one node routes a TLS connection arriving at
//! every other node (needs the announcements shared through Redis, see issue 17).
#![allow(clippy::unwrap_used)]

use serde_json::json;
use tandem_net::jsonrpc::params;
use tandem_testkit::poll::{POLL_BOUND, until_blocking};

use crate::fleet::{CALL_DEADLINE, SLACK};
use crate::support::fleet_bed::{Bed, NODES, host};

/// The announced domain (hd-1's directory settings allow `.internal-server.local`).
const DOMAIN: &str = "fleet.internal-server.local";

/// Whether a TLS handshake for `DOMAIN` completes through the public TLS port `addr` (from inside
/// hd-1's namespace, a host of the LAN): the node routed the hello to the private proxy, which
/// terminates TLS with the `internal-server` certificate. The certificate is not verified here:
/// completing the handshake at all is the routing.
fn tls_routes(bed: &Bed, addr: std::net::SocketAddr) -> Result<(), String> {
    let certs = bed.root().join("certs");
    bed.in_hd1(move |_| async move {
        let tls = tandem_settings::TlsSettings {
            ca_certificate_files: vec![certs.join("root.crt")],
            certificate_file: None,
            key_file: None,
            server_name: Some(DOMAIN.into()),
            verify_client: true,
            request_client_cert: false,
            insecure_skip_verify: true,
        };
        let config = tandem_net::tls::client_config(&tls, &[]).unwrap();
        let connector = tokio_rustls::TlsConnector::from(config);
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let name = rustls_pki_types::ServerName::try_from(DOMAIN.to_owned()).unwrap();
        match tokio::time::timeout(CALL_DEADLINE + SLACK, connector.connect(name, tcp)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("handshake through {addr}: {e}")),
            Err(_) => Err(format!("handshake through {addr} timed out")),
        }
    })
}

#[test]
fn an_announcement_made_through_one_node_routes_tls_at_every_node() {
    let mut bed = Bed::start();
    bed.start_private();
    // hd-1 asks its private proxy to announce the domain to public-proxy-1.ga; the private proxy's
    // Hyper node delivers announceConnections to whichever node its grpc_client picks.
    let announced = bed.in_hd1(|app| async move {
        app.call(
            "private-proxy-1.ga.announceConnection",
            params([
                ("proxy", json!("public-proxy-1.ga")),
                ("domain", json!(DOMAIN)),
            ]),
        )
        .await
    });
    assert!(announced.is_ok(), "{announced:?}");
    let addrs: Vec<std::net::SocketAddr> = (0..NODES)
        .map(|n| std::net::SocketAddr::from((bed.addr(host::NODES[n]), 4433)))
        .collect();
    // The node that took the announcement routes it (this checks the bed itself).
    let mut errors = vec![String::new(); NODES];
    let receiver = until_blocking(&format!("a node routing {DOMAIN}"), POLL_BOUND, || {
        (0..NODES).find(|&n| match tls_routes(&bed, addrs[n]) {
            Ok(()) => true,
            Err(e) => {
                errors[n] = e;
                false
            }
        })
    });
    println!(
        "fleet: node {} took the announcement of {DOMAIN}",
        receiver + 1
    );
    // Every other node routes it too, within the bounded delay of the shared announcements: an
    // announcement made through one node routes a TLS connection arriving at another.
    for n in (0..NODES).filter(|&n| n != receiver) {
        until_blocking(
            &format!(
                "node {} routing {DOMAIN}, announced through node {}",
                n + 1,
                receiver + 1
            ),
            POLL_BOUND,
            || tls_routes(&bed, addrs[n]).ok(),
        );
        println!("fleet: node {} routes {DOMAIN} too", n + 1);
    }
}

//! A listener configured with a host name that resolves to both families binds both, through the
//! real resolver: in a network namespace whose `/etc/hosts` names `both.test` as `127.0.0.1` and
//! `::1`, the `sd` binary serves its JSON-RPC and metrics listeners on both addresses (one port
//! each), and an idle-connection flood on the IPv4 sockets does not keep a client on `::1` from
//! being served. All traffic stays inside the namespace.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tandem_testkit::metrics::get;
use tandem_testkit::netns::Netns;
use tandem_testkit::sd::client;
use tokio::net::TcpStream;

use crate::support::sd_process::{SD, file_store_role};

/// Idle connections the flood opens on each IPv4 socket ("a few hundred" in all).
const FLOOD_PER_LISTENER: usize = 150;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[test]
fn a_name_of_both_families_serves_both_and_a_flood_on_one_spares_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, role) = file_store_role(dir.path(), "metrics:\n  bind_address: \"both.test:0\"\n");
    let file = role.join("001_default.yml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, yaml.replace("\"127.0.0.1:0\"", "\"both.test:0\"")).unwrap();

    let ns = Netns::with_hosts(
        &format!("tds-{}", std::process::id()),
        "127.0.0.1 localhost\n127.0.0.1 both.test\n::1 both.test\n",
    );
    let env = [("SD_SETTINGS".to_owned(), role.display().to_string())];
    let mut sd = ns.spawn("sd", SD, &["run"], &env);
    let addrs = sd.wait_for_addresses(&["sd listening", "metrics listening"]);
    // The primary (reported) address is the IPv4 one; the port is shared by both families.
    assert_eq!(addrs[0].ip(), V4, "{addrs:?}");
    assert_eq!(addrs[1].ip(), V4, "{addrs:?}");
    let (rpc_port, metrics_port) = (addrs[0].port(), addrs[1].port());

    ns.enter(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for ip in [V4, V6] {
                let metrics = SocketAddr::new(ip, metrics_port);
                assert_eq!(get(metrics, "/healthz").await.0, 200, "{metrics}");
                let rpc = SocketAddr::new(ip, rpc_port);
                client(&pki, rpc, "hd-1").tip().await.unwrap();
            }
            // Idle sockets on the IPv4 members of both listeners, held open.
            let mut flood = Vec::new();
            for _ in 0..FLOOD_PER_LISTENER {
                for port in [rpc_port, metrics_port] {
                    if let Ok(s) = TcpStream::connect(SocketAddr::new(V4, port)).await {
                        flood.push(s);
                    }
                }
            }
            assert!(
                flood.len() >= FLOOD_PER_LISTENER,
                "{} connected",
                flood.len()
            );
            // The IPv6 members are served while the flood holds its sockets.
            let metrics = SocketAddr::new(V6, metrics_port);
            assert_eq!(get(metrics, "/healthz").await.0, 200);
            client(&pki, SocketAddr::new(V6, rpc_port), "hd-1")
                .tip()
                .await
                .unwrap();
            drop(flood);
        });
    });
    sd.kill();
}

//! The fleet bed's Redis: a primary and a replica (AOF, `appendfsync always`) and three Sentinels,
//! each in its own namespace of the LAN.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use tandem_testkit::netns::{Lan, Netns};
use tandem_testkit::poll::{POLL_BOUND, until_blocking};

use super::fleet_bed::{MASTER_NAME, REDIS_PORT, SENTINEL_PORT, host};
use super::seed::Proc;

/// Waits (bounded) until `addr` accepts TCP connections, from inside `ns`.
fn wait_listening(ns: &Netns, what: &'static str, addr: SocketAddr) {
    ns.enter(move || {
        until_blocking(what, POLL_BOUND, || TcpStream::connect(addr).ok());
    });
}

/// Redis primary and replica (AOF, `appendfsync always`) and three Sentinels watching them; returns
/// once the replica is in sync and every Sentinel knows the primary.
pub fn start_redis(root: &Path, lan: &Lan) -> (Vec<Option<Proc>>, Vec<Proc>) {
    let primary_ip = lan.host(host::REDIS_PRIMARY).addr;
    let mut redis = Vec::new();
    for (i, &h) in [host::REDIS_PRIMARY, host::REDIS_REPLICA]
        .iter()
        .enumerate()
    {
        let data = root.join(format!("redis-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let port = REDIS_PORT.to_string();
        let mut args = vec![
            "--port",
            port.as_str(),
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            data.to_str().unwrap(),
        ];
        let primary = primary_ip.to_string();
        if i == 1 {
            args.extend(["--replicaof", primary.as_str(), port.as_str()]);
        }
        let name = ["redis-primary", "redis-replica"][i];
        let proc = lan.host(h).ns.spawn(name, "redis-server", &args, &[]);
        wait_listening(
            &lan.host(h).ns,
            name,
            SocketAddr::from((lan.host(h).addr, REDIS_PORT)),
        );
        redis.push(Some(proc));
    }
    let mut sentinels = Vec::new();
    for (i, &h) in host::SENTINELS.iter().enumerate() {
        let conf = root.join(format!("sentinel-{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {SENTINEL_PORT}\nbind 0.0.0.0\nprotected-mode no\ndir {}\n\
                 sentinel monitor {MASTER_NAME} {primary_ip} {REDIS_PORT} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                root.display()
            ),
        )
        .unwrap();
        let name = ["sentinel-1", "sentinel-2", "sentinel-3"][i];
        let proc = lan.host(h).ns.spawn(
            name,
            "redis-server",
            &[conf.to_str().unwrap(), "--sentinel"],
            &[],
        );
        wait_listening(
            &lan.host(h).ns,
            name,
            SocketAddr::from((lan.host(h).addr, SENTINEL_PORT)),
        );
        sentinels.push(proc);
    }
    // The replica is in sync before anything is written.
    let replica = lan.host(host::REDIS_REPLICA);
    let replica_addr = replica.addr.to_string();
    until_blocking("the replica syncs", POLL_BOUND, || {
        let out = replica.ns.run(
            "redis-cli",
            &["-h", &replica_addr, "-p", "6379", "info", "replication"],
            &[],
        );
        out.contains("master_link_status:up").then_some(())
    });
    (redis, sentinels)
}

//! Redis with Sentinel for tests: [`SentinelSet::start`] runs a primary, its replicas and three
//! Sentinels on 127.0.0.1 (free ports, private directories), waits until every replica is in sync
//! and every Sentinel knows the replicas and the other Sentinels, and can `kill -9` the master.
//! Sentinels declare a master down after [`DOWN_AFTER`] and fail over within [`FAILOVER_TIMEOUT`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tandem_settings::datastore::RedisDatastoreSettings;

use crate::poll::until_blocking;
use crate::redis::RedisServer;

/// The Sentinels' master name.
pub const MASTER_NAME: &str = "tandem";
/// Sentinels run: three, quorum two (the smallest set that survives losing one).
pub const SENTINELS: usize = 3;
/// `down-after-milliseconds`: 1.5 s, short for a test yet above a loaded machine's stalls.
pub const DOWN_AFTER: Duration = Duration::from_millis(1500);
/// `failover-timeout`: 10 s.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on set-up and on a failover to complete: 60 s, generous for a loaded 2-core machine.
pub const SETTLE_BOUND: Duration = Duration::from_secs(60);

/// A primary, its replicas and three Sentinels, all killed on drop.
#[derive(Debug)]
pub struct SentinelSet {
    /// Primary first, then the replicas; a killed server stays in the list, stopped.
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

fn connection(addr: SocketAddr) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(conn)
}

impl SentinelSet {
    /// Starts a primary, `replicas` replicas and three Sentinels; returns once replication and
    /// the Sentinels have settled.
    pub fn start(replicas: usize) -> io::Result<Self> {
        let primary = RedisServer::start()?;
        let mut servers = vec![];
        let primary_addr = primary.addr();
        servers.push(primary);
        for _ in 0..replicas {
            servers.push(RedisServer::start_replica_of(primary_addr)?);
        }
        let config = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\nsentinel down-after-milliseconds {MASTER_NAME} {}\nsentinel failover-timeout {MASTER_NAME} {}\n",
            primary_addr.port(),
            DOWN_AFTER.as_millis(),
            FAILOVER_TIMEOUT.as_millis(),
        );
        let sentinels = (0..SENTINELS)
            .map(|_| RedisServer::start_sentinel(&config))
            .collect::<io::Result<Vec<_>>>()?;
        let set = Self { servers, sentinels };
        set.wait_settled(primary_addr, replicas);
        Ok(set)
    }

    /// Waits until the master at `master` has `replicas` replicas online and every Sentinel sees
    /// them and the other Sentinels.
    fn wait_settled(&self, master: SocketAddr, replicas: usize) {
        until_blocking("replicas in sync", SETTLE_BOUND, || {
            let mut conn = connection(master).ok()?;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .ok()?;
            let online = info.lines().filter(|l| l.contains("state=online")).count();
            (online >= replicas).then_some(())
        });
        for sentinel in &self.sentinels {
            until_blocking("sentinel sees the set", SETTLE_BOUND, || {
                let mut conn = connection(sentinel.addr()).ok()?;
                let fields: Vec<String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(MASTER_NAME)
                    .query(&mut conn)
                    .ok()?;
                let field = |name: &str| {
                    fields
                        .chunks(2)
                        .find(|kv| kv[0] == name)
                        .and_then(|kv| kv.get(1))
                        .and_then(|v| v.parse::<usize>().ok())
                };
                let slaves = field("num-slaves")?;
                let others = field("num-other-sentinels")?;
                (slaves >= replicas && others == SENTINELS - 1).then_some(())
            });
        }
    }

    /// Datastore settings through the Sentinels for list `key`.
    pub fn settings(&self, key: &str) -> RedisDatastoreSettings {
        let mut settings = RedisDatastoreSettings::plain(String::new(), key.to_string());
        settings.addresses = self
            .sentinels
            .iter()
            .map(|s| s.addr().to_string())
            .collect();
        settings.master_name = MASTER_NAME.to_string();
        settings
    }

    /// The master's address as the first Sentinel that answers reports it.
    pub fn master(&self) -> Option<SocketAddr> {
        self.sentinels.iter().find_map(|s| {
            let mut conn = connection(s.addr()).ok()?;
            let (host, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME)
                .query(&mut conn)
                .ok()?;
            format!("{host}:{port}").parse().ok()
        })
    }

    /// Kills the current master with SIGKILL; returns its address.
    pub fn kill_master(&mut self) -> io::Result<SocketAddr> {
        let master = self
            .master()
            .ok_or_else(|| io::Error::other("no sentinel names a master"))?;
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.addr() == master)
            .ok_or_else(|| io::Error::other(format!("master {master} is not in the set")))?;
        server.kill()?;
        Ok(master)
    }

    /// Waits until the Sentinels name a master other than `old` that answers as a master.
    pub fn wait_failover(&self, old: SocketAddr) -> SocketAddr {
        until_blocking("sentinel failover", SETTLE_BOUND, || {
            let new = self.master().filter(|m| *m != old)?;
            let mut conn = connection(new).ok()?;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .ok()?;
            info.contains("role:master").then_some(new)
        })
    }

    /// A direct connection to the server at `addr` (to inspect what it holds).
    pub fn connect(&self, addr: SocketAddr) -> redis::RedisResult<redis::Connection> {
        connection(addr)
    }
}

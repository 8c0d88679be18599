//! Building the Redis client from the settings: addresses, a plain server or Sentinel, the
//! connection manager's timeouts and reconnect policy.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, ConnectionInfo, RedisConnectionInfo};

use super::{RECONNECT_RETRIES, REDIS_OPEN_TIMEOUT, REDIS_TIMEOUT, bounded};
use crate::error::DatastoreError;
use tandem_settings::datastore::RedisDatastoreSettings;

/// Parses `host:port` (or `[v6]:port`) into a TCP address.
pub fn parse_address(address: &str) -> Result<ConnectionAddr, DatastoreError> {
    let bad = || DatastoreError::Config(format!("redis address {address:?} is not host:port"));
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(ConnectionAddr::Tcp(host.to_string(), port))
}

/// The response timeout the connection needs: [`REDIS_TIMEOUT`], plus `wait_timeout` when appends
/// wait for replicas (a `WAIT` answers after up to `wait_timeout`).
pub(super) fn response_timeout(settings: &RedisDatastoreSettings) -> Duration {
    if settings.wait_replicas > 0 {
        REDIS_TIMEOUT + settings.wait_timeout
    } else {
        REDIS_TIMEOUT
    }
}

fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(response_timeout)
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_number_of_retries(RECONNECT_RETRIES)
        // The client's backoff starts at 1 s; keep it from growing past 1 s.
        .set_factor(2)
        .set_max_delay(REDIS_TIMEOUT.as_millis() as u64)
}

/// The Sentinel client for `settings` (whose addresses are Sentinels and `master_name` is set).
pub fn sentinel_client(
    settings: &RedisDatastoreSettings,
) -> Result<SentinelClient, DatastoreError> {
    let sentinels = settings
        .addresses
        .iter()
        .map(String::as_str)
        .map(parse_address)
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = SentinelClientBuilder::new(
        sentinels,
        settings.master_name.clone(),
        SentinelServerType::Master,
    )
    .map(|b| b.set_client_to_redis_db(i64::from(settings.database)))
    .map_err(|source| DatastoreError::Redis {
        op: "sentinel",
        source,
    })?;
    if !settings.password.is_empty() {
        builder = builder.set_client_to_redis_password(settings.password.expose().to_string());
    }
    builder.build().map_err(|source| DatastoreError::Redis {
        op: "sentinel",
        source,
    })
}

/// The plain (non-Sentinel) client for `settings`: exactly one address.
pub fn direct_client(settings: &RedisDatastoreSettings) -> Result<Client, DatastoreError> {
    let [address] = settings.addresses.as_slice() else {
        return Err(DatastoreError::Config(format!(
            "{} redis addresses without master_name would mean Redis Cluster, which is not supported; give one address or a master_name",
            settings.addresses.len()
        )));
    };
    let redis = RedisConnectionInfo {
        db: i64::from(settings.database),
        password: (!settings.password.is_empty()).then(|| settings.password.expose().to_string()),
        ..RedisConnectionInfo::default()
    };
    Client::open(ConnectionInfo {
        addr: parse_address(address)?,
        redis,
    })
    .map_err(|source| DatastoreError::Redis {
        op: "connect",
        source,
    })
}

pub(super) async fn connect(
    client: Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, DatastoreError> {
    let mut manager = bounded(
        "connect",
        REDIS_OPEN_TIMEOUT,
        ConnectionManager::new_with_config(client, manager_config(response_timeout)),
    )
    .await?;
    bounded(
        "PING",
        REDIS_TIMEOUT,
        redis::cmd("PING").query_async::<()>(&mut manager),
    )
    .await?;
    Ok(manager)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_settings::secret::Secret;

    fn settings(addresses: &[&str], master_name: &str) -> RedisDatastoreSettings {
        RedisDatastoreSettings {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            key: "entries".into(),
            master_name: master_name.into(),
            database: 3,
            password: Secret::new("hunter2"),
            ..RedisDatastoreSettings::plain(String::new(), String::new())
        }
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(
            parse_address("localhost:6379").unwrap(),
            ConnectionAddr::Tcp("localhost".into(), 6379)
        );
        assert_eq!(
            parse_address("[::1]:7000").unwrap(),
            ConnectionAddr::Tcp("::1".into(), 7000)
        );
        for bad in ["localhost", ":6379", "h:99999", "h:x"] {
            assert_eq!(parse_address(bad).unwrap_err().kind(), "config", "{bad}");
        }
    }

    #[test]
    fn direct_client_carries_database_and_password() {
        let client = direct_client(&settings(&["127.0.0.1:6379"], "")).unwrap();
        let info = client.get_connection_info();
        assert_eq!(info.redis.db, 3);
        assert_eq!(info.redis.password.as_deref(), Some("hunter2"));
        assert_eq!(info.addr, ConnectionAddr::Tcp("127.0.0.1".into(), 6379));
    }

    #[test]
    fn several_addresses_need_a_master_name() {
        let err = direct_client(&settings(&["a:1", "b:2"], "")).unwrap_err();
        assert_eq!(err.kind(), "config");
        assert!(err.to_string().contains("master_name"), "{err}");
    }

    #[test]
    fn sentinel_config_builds_from_settings() {
        assert!(
            sentinel_client(&settings(&["10.0.0.1:26379", "10.0.0.2:26379"], "mymaster")).is_ok()
        );
        assert_eq!(
            sentinel_client(&settings(&["nope"], "mymaster"))
                .err()
                .map(|e| e.kind()),
            Some("config")
        );
    }
}

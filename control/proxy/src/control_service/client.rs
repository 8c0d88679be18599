//! [`ControlClient`]: typed calls to a proxy's `ControlService` over mTLS (one HTTP/2
//! connection, reused by every call and by concurrent callers; cheap to clone).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tandem_proto::control as pb;
use tandem_proto::control::control_service_client::ControlServiceClient;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

/// Length of a pair token, in bytes.
use tandem_types::{TOKEN_LEN, Token};

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection (TCP, TLS or HTTP/2) could not be set up.
    #[error("cannot connect to the control service at {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The server answered with an error status (`PermissionDenied` for non-admins).
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The answer does not have the documented shape.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl ClientError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Status(s) if s.code() == tonic::Code::PermissionDenied => "permission_denied",
            Self::Status(_) => "status",
            Self::Malformed(_) => "malformed",
        }
    }

    /// The gRPC status code, when the server answered with one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

/// A pair issued by `CreatePair`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedPair {
    /// `(core, seq)` of the pair.
    pub id: (u32, u64),
    /// `HOST:PORT` both sides dial.
    pub endpoint: String,
    /// Side A's token, then side B's.
    pub tokens: [Token; 2],
    /// RFC 3339 expiry of the unused tokens.
    pub expires_at: String,
}

/// A connected control client.
#[derive(Clone, Debug)]
pub struct ControlClient {
    inner: ControlServiceClient<Channel>,
    timeout: Duration,
}

impl ControlClient {
    /// Connects to `addr` (`HOST:PORT`), verifying the server as `server_name` with `tls` (which
    /// should carry our client certificate). `timeout` bounds the connection and every unary call.
    pub async fn connect(
        addr: &str,
        tls: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        };
        // The URI only names the server; the connector decides where to connect.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(connect_err)?
            .connect_timeout(timeout);
        let target = addr.to_owned();
        let connector = TlsConnector::from(tls);
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let (target, connector, name) =
                    (target.clone(), connector.clone(), server_name.clone());
                async move {
                    let tcp = TcpStream::connect(target.as_str()).await?;
                    let _ = tcp.set_nodelay(true);
                    let tls = connector.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            }))
            .await
            .map_err(connect_err)?;
        Ok(Self {
            inner: ControlServiceClient::new(channel)
                .max_decoding_message_size(tandem_proto::MAX_MESSAGE_BYTES),
            timeout,
        })
    }

    fn request<T>(&self, message: T, extra: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout + extra);
        request
    }

    /// Creates a pair; `ttl` `None` = the proxy's configured lifetime.
    pub async fn create_pair(&self, ttl: Option<Duration>) -> Result<CreatedPair, ClientError> {
        let ttl_ms = ttl.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let message = pb::CreatePairRequest { ttl_ms };
        let answer = self
            .inner
            .clone()
            .create_pair(self.request(message, Duration::ZERO))
            .await?
            .into_inner();
        created_pair(answer)
    }

    /// Per-core counts and up to `limit` tracked pairs (0 = the server's default).
    pub async fn list_pairs(&self, limit: u32) -> Result<pb::ListPairsResponse, ClientError> {
        let message = pb::ListPairsRequest { limit };
        Ok(self
            .inner
            .clone()
            .list_pairs(self.request(message, Duration::ZERO))
            .await?
            .into_inner())
    }

    /// Every operator's quotas, limits and use.
    pub async fn quotas(&self) -> Result<pb::QuotasResponse, ClientError> {
        Ok(self
            .inner
            .clone()
            .quotas(self.request(pb::QuotasRequest {}, Duration::ZERO))
            .await?
            .into_inner())
    }

    /// Per-core engine counters and the service's counters.
    pub async fn stats(&self) -> Result<pb::StatsResponse, ClientError> {
        Ok(self
            .inner
            .clone()
            .stats(self.request(pb::StatsRequest {}, Duration::ZERO))
            .await?
            .into_inner())
    }

    /// Drains the proxy with `grace` for live pairs; waits for the drain to finish.
    pub async fn drain(&self, grace: Duration) -> Result<pb::DrainResponse, ClientError> {
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        Ok(self
            .inner
            .clone()
            .drain(self.request(pb::DrainRequest { grace_ms }, grace))
            .await?
            .into_inner())
    }

    /// Upgrades the proxy's binary (as SIGUSR2); waits for the outcome (up to `within`).
    pub async fn upgrade(&self, within: Duration) -> Result<pb::UpgradeResponse, ClientError> {
        Ok(self
            .inner
            .clone()
            .upgrade(self.request(pb::UpgradeRequest {}, within))
            .await?
            .into_inner())
    }

    /// Reloads the proxy's settings (as SIGHUP does); the keys applied.
    pub async fn reload(&self) -> Result<pb::ReloadResponse, ClientError> {
        Ok(self
            .inner
            .clone()
            .reload(self.request(pb::ReloadRequest {}, Duration::ZERO))
            .await?
            .into_inner())
    }

    /// The stream of pair events from now on (no deadline; drop it to stop watching).
    pub async fn watch_events(&self) -> Result<tonic::Streaming<pb::PairEvent>, ClientError> {
        Ok(self
            .inner
            .clone()
            .watch_events(pb::WatchEventsRequest {})
            .await?
            .into_inner())
    }
}

/// Checks the documented shape: two tokens of 32 bytes and an endpoint.
fn created_pair(answer: pb::CreatePairResponse) -> Result<CreatedPair, ClientError> {
    let token = |i: usize| -> Result<Token, ClientError> {
        answer
            .tokens
            .get(i)
            .and_then(|t| <[u8; TOKEN_LEN]>::try_from(t.as_slice()).ok())
            .map(Token::from_bytes)
            .ok_or_else(|| ClientError::Malformed(format!("token {i} is not {TOKEN_LEN} bytes")))
    };
    if answer.tokens.len() != 2 {
        return Err(ClientError::Malformed(format!(
            "{} tokens instead of 2",
            answer.tokens.len()
        )));
    }
    if answer.endpoint.is_empty() {
        return Err(ClientError::Malformed("no endpoint".into()));
    }
    let id = answer.id.map_or((0, 0), |id| (id.core, id.seq));
    Ok(CreatedPair {
        id,
        tokens: [token(0)?, token(1)?],
        endpoint: answer.endpoint,
        expires_at: answer.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(tokens: Vec<Vec<u8>>) -> pb::CreatePairResponse {
        pb::CreatePairResponse {
            id: Some(pb::PairId { core: 1, seq: 7 }),
            endpoint: "127.0.0.1:9".into(),
            tokens,
            expires_at: "2030-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn created_pair_requires_two_32_byte_tokens() {
        let ok = created_pair(answer(vec![vec![1; 32], vec![2; 32]])).unwrap();
        assert_eq!((ok.id, ok.tokens[1].as_bytes()[0]), ((1, 7), 2));
        for bad in [
            vec![vec![1; 32]],
            vec![vec![1; 32], vec![2; 31]],
            vec![vec![0; 32]; 3],
        ] {
            assert_eq!(created_pair(answer(bad)).unwrap_err().kind(), "malformed");
        }
    }
}

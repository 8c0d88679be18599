//! What a listener admits and how long a connection may hold its slot: the serving kit's policy,
//! with defaults that hold the hostile clients of RELIABILITY.md on a 2-core machine.
//!
//! Every bound is declared here with its unit and the attack it stops; listeners take
//! [`ServingConfig::default`] unless their settings override a field (`serving:` block, see
//! [`super::RawServingSettings`]).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use crate::bucket::Rate;

/// Connections one listener holds at once, all sources together. At the cap, the oldest connection
/// that has not completed a request is closed to make room; only when every held connection has
/// completed one is a new connection refused. 1,024 keeps a process far below the 20,000 open-file
/// limit with all its listeners full.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Connections one source (IPv4 address, IPv6 /64) holds at once on one listener. At the cap, that
/// source's own oldest connection without a completed request is closed first, so a flood only churns
/// its own slots; a source whose connections all completed requests is refused.
pub const DEFAULT_PER_SOURCE_CONNECTIONS: u32 = 128;
/// New connections per second one source may open, sustained (a flood from one address is refused
/// at accept, before a TLS handshake costs us CPU).
pub const DEFAULT_PER_SOURCE_RATE: u32 = 64;
/// New connections one source may open back to back after a quiet period.
pub const DEFAULT_PER_SOURCE_BURST: u32 = 128;
/// Sources tracked at once per listener (their open counts and rate buckets). Past it, sources with
/// no open connection are forgotten; new sources are refused only if all tracked ones hold
/// connections, which the global cap makes impossible (so memory stays bounded by this number).
pub const MAX_TRACKED_SOURCES: usize = 65_536;

/// Time from accept to a completed TLS handshake (silent TCP connections, slow handshakes).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from the handshake (or accept, without TLS) to the first request being answered
/// (idle-after-handshake connections, slow request heads).
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may sit with no request in flight after answering one (keep-alive idlers).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for one HTTP/1 request head to arrive once it started (slow-drip headers).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for one request body to arrive in full (slow-drip bodies).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 streams one connection may have open at once (stream floods).
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 64;
/// The largest HTTP/2 header list accepted, in bytes (HPACK bombs, CONTINUATION floods).
pub const DEFAULT_H2_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// Interval of HTTP/2 keepalive pings on a connection with no traffic (dead peers).
pub const DEFAULT_H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Time a keepalive ping may go unanswered before the connection is closed.
pub const DEFAULT_H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams a client may open and reset before the server answers them (rapid reset, CVE-2023-44487).
pub const DEFAULT_H2_MAX_PENDING_RESETS: usize = 32;
/// The largest HTTP/1 read buffer, in bytes: bounds one request head (oversized headers).
pub const DEFAULT_H1_MAX_BUF_BYTES: usize = 64 * 1024;

/// Who gets a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: NonZeroUsize,
    /// See [`DEFAULT_PER_SOURCE_CONNECTIONS`].
    pub per_source_connections: NonZeroU32,
    /// See [`DEFAULT_PER_SOURCE_RATE`]; `None` = no accept-rate limit.
    pub per_source_rate: Option<Rate>,
    /// See [`MAX_TRACKED_SOURCES`].
    pub max_tracked_sources: NonZeroUsize,
}

/// How long a slot may be held in each phase of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake: Duration,
    /// See [`DEFAULT_FIRST_REQUEST_TIMEOUT`].
    pub first_request: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle: Duration,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT`].
    pub body: Duration,
}

/// Per-connection HTTP/2 (and HTTP/1 head) limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Limits {
    /// See [`DEFAULT_H2_MAX_CONCURRENT_STREAMS`].
    pub max_concurrent_streams: u32,
    /// See [`DEFAULT_H2_MAX_HEADER_LIST_BYTES`].
    pub max_header_list_bytes: u32,
    /// See [`DEFAULT_H2_KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
    /// See [`DEFAULT_H2_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// See [`DEFAULT_H2_MAX_PENDING_RESETS`].
    pub max_pending_resets: usize,
    /// See [`DEFAULT_H1_MAX_BUF_BYTES`].
    pub h1_max_buf_bytes: usize,
}

/// The whole policy of one listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServingConfig {
    /// Who gets a slot.
    pub admission: AdmissionConfig,
    /// How long a slot may be held.
    pub deadlines: Deadlines,
    /// HTTP/2 limits (HTTP servers and tonic servers).
    pub http2: Http2Limits,
    /// PROXY protocol headers from trusted load balancers; `None` = off (a header is then just
    /// bytes that fail the TLS handshake or the request).
    pub proxy_protocol: Option<crate::ProxyProtocol>,
}

fn non_zero_usize(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn non_zero_u32(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_connections: non_zero_usize(DEFAULT_MAX_CONNECTIONS),
            per_source_connections: non_zero_u32(DEFAULT_PER_SOURCE_CONNECTIONS),
            per_source_rate: Some(Rate {
                per_second: DEFAULT_PER_SOURCE_RATE,
                burst: DEFAULT_PER_SOURCE_BURST,
            }),
            max_tracked_sources: non_zero_usize(MAX_TRACKED_SOURCES),
        }
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            handshake: DEFAULT_HANDSHAKE_TIMEOUT,
            first_request: DEFAULT_FIRST_REQUEST_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
            header: DEFAULT_HEADER_TIMEOUT,
            body: DEFAULT_BODY_TIMEOUT,
        }
    }
}

impl Default for Http2Limits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            max_header_list_bytes: DEFAULT_H2_MAX_HEADER_LIST_BYTES,
            keepalive_interval: DEFAULT_H2_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_H2_KEEPALIVE_TIMEOUT,
            max_pending_resets: DEFAULT_H2_MAX_PENDING_RESETS,
            h1_max_buf_bytes: DEFAULT_H1_MAX_BUF_BYTES,
        }
    }
}

//! The serving kit: every TCP/TLS listener of every program is accepted, admitted and watched here.
//!
//! - [`Admission`]: one listener's admission policy over the sans-IO [`AdmissionTable`]: a
//!   per-source connection cap and accept rate (IPv4 address, IPv6 /64), and a global cap that
//!   evicts the oldest connection that has not completed a request before refusing anyone.
//! - [`Guarded`]: a connection's I/O that fails once its phase deadline passes (handshake, first
//!   request, idle) or the table evicts it, so hyper, tonic or rustls drop it with its [`Slot`].
//! - [`Acceptor`] / [`serve_connections`]: the accept loop of every listener (per-source filter,
//!   injected sockets, back-off on errors, tracked tasks, grace on shutdown).
//! - PROXY protocol: a listener whose [`ServingConfig::proxy_protocol`] trusts the peer reads its
//!   header first (bounded, under its deadline, at most [`MAX_PENDING_HEADERS`] at once) and
//!   admits, filters and serves the connection as the client the header names.
//! - [`bind`]: resolves (without blocking) and binds a listener's `host:port`, one socket per
//!   distinct address of the name (a [`ListenerGroup`], served together); [`bind_named`] adopts
//!   the sockets a supervisor passed under that name instead (systemd socket activation).
//! - [`notify`]: the service manager's readiness protocol (`READY=1`, `RELOADING=1`,
//!   `STOPPING=1`, `MAINPID=`) to `$NOTIFY_SOCKET`, for `Type=notify` units.
//! - [`ServingConfig`]: the policy with its documented defaults; [`ServingMetrics`]: counters by
//!   listener and reason.
//!
//! See RELIABILITY.md for the attacks each default stops.

mod accept;
pub mod activation;
mod admission;
mod bind;
mod conn;
mod group;
mod guarded;
mod metrics;
pub mod notify;
mod proxied;
mod rlimit;
mod shutdown;
pub mod source;
mod table;

pub use accept::{ACCEPT_BACKOFF, Acceptor, Handshake, serve_connections};
pub use activation::{ActivationError, adopt_from_env, bind_named};
pub use admission::Admission;
pub use bind::{BindError, bind, plan, resolve, resolve_one};
pub use conn::{CutReason, Phase, RequestGuard, Slot};
pub use group::{ListenerGroup, MAX_ADDRESSES_PER_LISTENER};
pub use guarded::Guarded;
pub use metrics::ServingMetrics;
pub use notify::{Notice, notify};
pub use proxied::MAX_PENDING_HEADERS;
pub use rlimit::raise_open_file_limit;
pub use shutdown::{Shutdown, ShutdownTrigger, shutdown};
pub use source::SourceKey;
pub use table::{AdmissionTable, Admitted, ConnId, Eviction, Refusal};
pub use tandem_types::serving_config::*;
pub use tandem_types::{Rate, TokenBucket, bucket};

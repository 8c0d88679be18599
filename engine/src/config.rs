//! Engine settings with documented defaults and bounds.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_types::ProxyProtocol;

use crate::error::EngineError;
use crate::limiter::{AcceptRate, MAX_ACCEPT_RATES};

/// Which monoio driver the workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Driver {
    /// io_uring when it can be set up, else the epoll (legacy) driver.
    #[default]
    Auto,
    /// io_uring only; starting fails when it cannot be set up.
    IoUring,
    /// The epoll driver.
    Legacy,
}

/// The driver a worker actually runs on (reported in logs and stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverInUse {
    /// io_uring.
    IoUring,
    /// epoll.
    Legacy,
}

impl DriverInUse {
    /// Stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DriverInUse::IoUring => "io_uring",
            DriverInUse::Legacy => "epoll",
        }
    }
}

/// Settings of the data plane. `Default` gives the documented defaults with both ports on
/// `127.0.0.1:0`; the control plane builds this from its settings file.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// CPU ids to run one worker on each; `None` = every online core.
    pub cores: Option<Vec<usize>>,
    /// Pin each worker to its core (default true; tests on shared machines may turn it off).
    pub pin: bool,
    /// Driver choice (default `Auto`).
    pub driver: Driver,
    /// The pairing port (the original's "internal endpoint"): clients write a token first.
    pub pairing_addr: SocketAddr,
    /// The TLS passthrough port routed by SNI; `None` = not served.
    pub tls_addr: Option<SocketAddr>,
    /// Further addresses of the pairing port (a host name resolving to both families): each
    /// binds the port `pairing_addr` got, on every core. At most
    /// [`MAX_ADDRESSES_PER_PORT`]` - 1`; `[::]` covers `0.0.0.0` (the duplicate is skipped).
    pub pairing_more: Vec<SocketAddr>,
    /// Further addresses of the TLS port, as [`EngineConfig::pairing_more`] (ignored without
    /// `tls_addr`).
    pub tls_more: Vec<SocketAddr>,
    /// Lifetime of a pair's tokens (default 30 s): after it, unused tokens and a waiting side expire.
    pub pair_ttl: Duration,
    /// Time a new connection has to deliver its 32-byte token (default 5 s, SPEC §4.6).
    pub token_deadline: Duration,
    /// Time a TLS connection has to deliver its whole ClientHello (default 5 s).
    pub hello_deadline: Duration,
    /// Largest ClientHello we buffer, in bytes including record headers (default 64 KiB:
    /// a hello with post-quantum key shares is ~2–3 KiB; 64 KiB bounds memory per connection).
    pub hello_max_bytes: usize,
    /// Close a pair when no byte moved either way for this long (default 5 min); `None` = never.
    pub idle_timeout: Option<Duration>,
    /// Park a relaying pair once no byte moved either way for this long and neither direction
    /// holds a byte (default 2 s; `None` = never): its relay task ends and its sockets wait in
    /// the core's parking lot (one epoll instance per core) as a ~120-byte record, until a
    /// byte, a close or a reset arrives on either socket, which resumes the relay. An idle
    /// pair then costs its record and its sockets instead of a task (~1.1 KiB future plus
    /// driver state). Precision is the core's `tick`; a resumed pair stays a task for at
    /// least this long. Must be > 0.
    pub park_after: Option<Duration>,
    /// Called on a core's own thread by the tick after pairs parked there (at most once per
    /// [`RELEASE_MEMORY_EVERY`]), for the binary to return the core thread's freed memory to
    /// the kernel: the tasks of the pairs that parked are freed on that thread, and a
    /// thread-caching allocator (mimalloc, the binaries') keeps a thread's free pages until that
    /// thread allocates again, which an idle core does not. `None`: nothing is called.
    pub release_memory: Option<fn()>,
    /// Set TCP_NODELAY on relayed sockets (default true: we forward, we must not delay).
    pub nodelay: bool,
    /// TCP keepalive idle time on relayed sockets (default 60 s); `None` = off.
    pub keepalive: Option<Duration>,
    /// Open connections per core, in sockets, counting waiting and paired ones (default 50 000;
    /// each holds 1 fd and ~1 KiB of engine state; bounds fds and memory).
    pub max_conns_per_core: usize,
    /// Connections waiting for their partner per core (default 10 000; each holds an fd until
    /// its partner or the TTL; bounds what an issuer of tokens can park on us).
    pub max_waiting_per_core: usize,
    /// Registered (issued, not yet completed) pairs per core (default 100 000 entries, ~200 B each).
    pub max_pairs_per_core: usize,
    /// Pipes kept per core (default 1024 pipes = 2048 fds); when all are leased, copy fallback.
    pub pipe_pool_size: usize,
    /// Pipe capacity set with F_SETPIPE_SZ, in bytes (default 1 MiB, the kernel's default
    /// `fs.pipe-max-size`; it rounds up to a power-of-two number of pages). Bigger pipes mean
    /// fewer, larger splices: relay CPU per byte for one bulk pair, measured with tandem-bench,
    /// is ~1.2x lower at 1 MiB than at 256 KiB and ~1.7x lower than at 64 KiB. An unprivileged
    /// user's pipes may hold `fs.pipe-user-pages-soft` pages in all (64 MiB by default, i.e. 64
    /// such pipes per user); past that the kernel makes two-page pipes, which the pool refuses
    /// (`pipes_undersized`), and transfers copy. Raise that sysctl on relays with many bulk pairs.
    pub pipe_size: usize,
    /// Copy-fallback buffer size, in bytes: one `recv`/`send` moves at most this much, and each
    /// direction on the copy path leases one buffer. Default 64 KiB (the floor for the
    /// fallback: fewer syscalls per MiB than a 16 KiB buffer). Bounds: [`MIN_COPY_BUF`] (16 KiB,
    /// smaller buffers cost a syscall pair per 16 KiB, measured in `benches/bulk.rs`) to
    /// [`MAX_COPY_BUF`] (4 MiB; memory per copying direction).
    pub copy_buf_size: usize,
    /// Copy buffers kept per core for reuse (default 256).
    pub copy_pool_size: usize,
    /// Messages a core's mailbox holds (default 4096): registrations and socket handoffs.
    pub mailbox_capacity: usize,
    /// Pair events buffered for the control plane (default 65 536); when full, events are
    /// dropped and counted (the data plane never waits for the control plane).
    pub events_capacity: usize,
    /// Bad tokens one source IP may present per window per core before its connections are
    /// refused at accept (default 20 per 10 s).
    pub bad_token_limit: u32,
    /// The limiter's window (default 10 s).
    pub bad_token_window: Duration,
    /// Sources (IPv4 addresses, IPv6 /64 prefixes) tracked by the limiter per core (default
    /// 4096 entries; oldest evicted).
    pub bad_token_table: usize,
    /// New connections one source (IPv4 address, IPv6 /64) may open per window on each data
    /// port: the proxy's `tcp_rate_limits` (default none: unlimited). At most
    /// [`MAX_ACCEPT_RATES`] rates, every one applies. Each limit is engine-wide and split over
    /// the cores: a core admits `ceil(limit / cores)` per source (see
    /// [`crate::limiter::core_share`]), since SO_REUSEPORT spreads a source's connections over
    /// the cores by hash; a source thus gets at most `limit + cores - 1`, and somewhat fewer when
    /// its connections land unevenly. A refused connection is closed at once and counted
    /// (`rate_refusals`); refusals do not use up the source's rate.
    pub accept_rates: Vec<AcceptRate>,
    /// Sources tracked per accept-rate table, one table per core and data port (default 4096
    /// entries, ~80 B each: bounds memory; past it windows that ended are swept, then the
    /// least active source is evicted).
    pub accept_rate_table: usize,
    /// Open SNI pairs one source may hold, engine-wide, split over the cores like
    /// `accept_rates` (default 64). A pair counts from its routed ClientHello until its
    /// connection closes: silent hellos naming an announced domain would otherwise each hold a
    /// private proxy's connection slot (1024 of them) for up to its timeout. 64 lets a browser
    /// or a small NAT open plenty of TLS connections at once and keeps one source to 1/16 of a
    /// private proxy's slots. A hello past it is closed at once and counted
    /// (`sni_source_refusals`).
    pub sni_pairs_per_source: u32,
    /// Open SNI pairs one domain may hold, engine-wide, split over the cores (default 512:
    /// half a private proxy's 1024 slots, so a flood of one domain from many sources leaves
    /// the private proxy room for its other domains). A hello past it is closed at once and
    /// counted (`sni_domain_refusals`). Set it at or above the concurrent TLS connections a
    /// domain really serves.
    pub sni_pairs_per_domain: u32,
    /// Pair-table sweep period (default 100 ms): expiry precision for waiting sides.
    pub tick: Duration,
    /// Back-off after an accept error such as EMFILE (default 50 ms).
    pub accept_backoff: Duration,
    /// PROXY protocol (v1, v2) on both data ports from these trusted networks (default `None`:
    /// off). A connection from a trusted network must start with a header (read under its
    /// deadline, at most [`tandem_proxy_header::DEFAULT_MAX_HEADER_BYTES`]); the client address
    /// it carries is the one the limiters, the SNI resolver and the logs use. A connection from
    /// elsewhere that starts with a header is refused and counted (`proxy_untrusted`).
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cores: None,
            pin: true,
            driver: Driver::Auto,
            pairing_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_addr: None,
            pairing_more: Vec::new(),
            tls_more: Vec::new(),
            pair_ttl: Duration::from_secs(30),
            token_deadline: Duration::from_secs(5),
            hello_deadline: Duration::from_secs(5),
            hello_max_bytes: 64 * 1024,
            idle_timeout: Some(Duration::from_secs(300)),
            park_after: Some(DEFAULT_PARK_AFTER),
            release_memory: None,
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            max_conns_per_core: 50_000,
            max_waiting_per_core: 10_000,
            max_pairs_per_core: 100_000,
            pipe_pool_size: 1024,
            pipe_size: 1024 * 1024,
            copy_buf_size: 64 * 1024,
            copy_pool_size: 256,
            mailbox_capacity: 4096,
            events_capacity: 65_536,
            bad_token_limit: 20,
            bad_token_window: Duration::from_secs(10),
            bad_token_table: 4096,
            accept_rates: Vec::new(),
            accept_rate_table: 4096,
            sni_pairs_per_source: DEFAULT_SNI_PAIRS_PER_SOURCE,
            sni_pairs_per_domain: DEFAULT_SNI_PAIRS_PER_DOMAIN,
            tick: Duration::from_millis(100),
            accept_backoff: Duration::from_millis(50),
            proxy_protocol: None,
        }
    }
}

/// At most this many addresses per data port (the configured one and its `*_more`): a
/// dual-stack host name has two; the bound keeps a resolver answer from opening hundreds of
/// sockets per core.
pub const MAX_ADDRESSES_PER_PORT: usize = 8;

/// Least time between two [`EngineConfig::release_memory`] calls on one core: parking comes
/// in waves (every pair quiet since the same moment parks in the same tick or the next few), and
/// one release after a wave frees what the wave freed.
pub const RELEASE_MEMORY_EVERY: Duration = Duration::from_secs(1);

/// Default [`EngineConfig::park_after`]: 2 s, far above the gaps of interactive traffic (a
/// request/response pair at one message a second never parks), short enough that idle
/// connections (keep-alives, push channels) spend nearly all their life parked.
pub const DEFAULT_PARK_AFTER: Duration = Duration::from_secs(2);

/// Default [`EngineConfig::sni_pairs_per_source`].
pub const DEFAULT_SNI_PAIRS_PER_SOURCE: u32 = 64;
/// Default [`EngineConfig::sni_pairs_per_domain`].
pub const DEFAULT_SNI_PAIRS_PER_DOMAIN: u32 = 512;

/// Smallest copy buffer we accept, in bytes. The default is 64 KiB; 16 KiB is allowed for
/// memory-tight deployments (and benchmarked against 64 and 256 KiB in `benches/bulk.rs`).
pub const MIN_COPY_BUF: usize = 16 * 1024;
/// Largest copy buffer we accept, in bytes (one is leased per copying direction, so this
/// bounds the copy path's memory per pair at 8 MiB).
pub const MAX_COPY_BUF: usize = 4 * 1024 * 1024;
/// Smallest ClientHello bound, in bytes (one full TLS record plus its header).
pub const MIN_HELLO_BYTES: usize = 16 * 1024 + 5;

impl EngineConfig {
    /// Checks every bound; a bad value fails at start with the key and reason.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |key, reason: &str| {
            Err(EngineError::Config {
                key,
                reason: reason.to_owned(),
            })
        };
        if let Some(c) = &self.cores
            && c.is_empty()
        {
            return bad("cores", "empty list");
        }
        if self.pair_ttl.is_zero() || self.token_deadline.is_zero() || self.hello_deadline.is_zero()
        {
            return bad("pair_ttl/token_deadline/hello_deadline", "must be > 0");
        }
        if self.hello_max_bytes < MIN_HELLO_BYTES {
            return bad("hello_max_bytes", "must be at least 16389 (one record)");
        }
        if !(MIN_COPY_BUF..=MAX_COPY_BUF).contains(&self.copy_buf_size) {
            return bad("copy_buf_size", "must be within 16 KiB ..= 4 MiB");
        }
        if self.max_conns_per_core == 0 || self.mailbox_capacity == 0 || self.events_capacity == 0 {
            return bad(
                "max_conns_per_core/mailbox_capacity/events_capacity",
                "must be > 0",
            );
        }
        if self.park_after.is_some_and(|d| d.is_zero()) {
            return bad("park_after", "must be > 0 (or unset: never park)");
        }
        if self.tick.is_zero() || self.bad_token_window.is_zero() {
            return bad("tick/bad_token_window", "must be > 0");
        }
        if self
            .proxy_protocol
            .as_ref()
            .is_some_and(|p| p.deadline.is_zero())
        {
            return bad("proxy_protocol.deadline", "must be > 0");
        }
        self.validate_limits()
    }

    fn validate_limits(&self) -> Result<(), EngineError> {
        let bad = |key, reason: String| Err(EngineError::Config { key, reason });
        if self.accept_rates.len() > MAX_ACCEPT_RATES {
            return bad(
                "accept_rates",
                format!(
                    "at most {MAX_ACCEPT_RATES} rates, got {}",
                    self.accept_rates.len()
                ),
            );
        }
        if self
            .accept_rates
            .iter()
            .any(|r| r.limit == 0 || r.window.is_zero())
        {
            return bad("accept_rates", "every limit and window must be > 0".into());
        }
        if self.accept_rate_table == 0 {
            return bad("accept_rate_table", "must be > 0".into());
        }
        for (key, more) in [
            ("pairing_more", &self.pairing_more),
            ("tls_more", &self.tls_more),
        ] {
            if more.len() >= MAX_ADDRESSES_PER_PORT {
                return bad(
                    key,
                    format!(
                        "at most {MAX_ADDRESSES_PER_PORT} addresses per port, got {}",
                        more.len() + 1
                    ),
                );
            }
        }
        if self.sni_pairs_per_source == 0 || self.sni_pairs_per_domain == 0 {
            return bad(
                "sni_pairs_per_source/sni_pairs_per_domain",
                "must be > 0".into(),
            );
        }
        Ok(())
    }

    /// The CPU ids to run workers on.
    pub fn core_ids(&self) -> Vec<usize> {
        match &self.cores {
            Some(c) => c.clone(),
            None => {
                let n = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                (0..n).collect()
            }
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

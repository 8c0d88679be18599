//! N concurrent callers against one destination: connections opened first, a warm-up, then calls
//! back to back until `max_calls` are made or `max_time` passes (both bounds always apply; a call
//! that does not answer within `call_timeout` is an error, never a hang).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::caller::{Conn, Http, JsonRpcServer, connect, connect_grpc};
use crate::net::source_addr;
use crate::stats::{Latencies, LatencySummary};

/// Callers that share one HTTP/2 connection (the gateway's default `h2_max_concurrent_streams`).
const CALLERS_PER_H2_CONNECTION: usize = 64;
/// Source addresses HTTP/1.1 callers are spread over (127.0.0.1..=127.0.0.16): a listener admits
/// 128 connections and 128 new connections back to back per source, so 256 callers from one
/// address would be refused by design, not by the path under test.
pub const SOURCE_ADDRS: usize = 16;
/// Pause after a failed connect before the caller tries again (bounded by the phase's time).
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Distinct error reasons kept per phase (the rest are counted under "other").
const MAX_REASONS: usize = 16;

/// What the callers call.
#[derive(Clone)]
pub enum Dest {
    /// A JSON-RPC server (hd-1's gateway, or the axum floor).
    JsonRpc {
        /// Where.
        server: JsonRpcServer,
        /// HTTP version.
        http: Http,
        /// Method name.
        method: String,
    },
    /// A `Hyper` gRPC server (the tonic floor).
    Grpc {
        /// Where.
        server: JsonRpcServer,
        /// Method name carried in the request.
        method: String,
    },
}

/// Bounds of one phase.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct LoadSpec {
    /// Concurrent callers.
    pub callers: usize,
    /// Calls recorded, at most.
    pub max_calls: u64,
    /// Wall time of the recorded part, at most.
    pub max_time: Duration,
    /// Bound on one call.
    pub call_timeout: Duration,
    /// Unrecorded calls per caller before the recorded part.
    pub warmup_per_caller: u64,
}

/// What one phase measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadFigures {
    /// Concurrent callers.
    pub callers: usize,
    /// Calls answered correctly.
    pub calls_ok: u64,
    /// Calls that failed (transport, JSON-RPC error, wrong answer, timeout) plus failed connects.
    pub errors: u64,
    /// Failures by reason.
    pub error_reasons: BTreeMap<String, u64>,
    /// Wall time of the recorded part, seconds.
    pub wall_seconds: f64,
    /// Correct answers per second.
    pub calls_per_sec: f64,
    /// Latency of correct answers.
    pub latency: LatencySummary,
}

struct Tally {
    lat: Latencies,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn error(&mut self, reason: String) {
        let key = if self.errors.len() < MAX_REASONS || self.errors.contains_key(&reason) {
            reason
        } else {
            "other".into()
        };
        *self.errors.entry(key).or_default() += 1;
    }
}

impl Dest {
    async fn open(&self, from: Option<Ipv4Addr>) -> Result<Conn, String> {
        match self {
            Dest::JsonRpc { server, http, .. } => connect(server, *http, from).await,
            Dest::Grpc { server, .. } => connect_grpc(server).await.map(Conn::Grpc),
        }
    }

    fn shares_connections(&self) -> bool {
        !matches!(self, Dest::JsonRpc { http: Http::H1, .. })
    }

    fn parts(&self) -> (&JsonRpcServer, &str) {
        match self {
            Dest::JsonRpc { server, method, .. } | Dest::Grpc { server, method } => {
                (server, method)
            }
        }
    }

    fn share(conn: &Conn) -> Option<Conn> {
        match conn {
            Conn::H2(s) => Some(Conn::H2(s.clone())),
            Conn::Grpc(c) => Some(Conn::Grpc(c.clone())),
            Conn::H1(_) => None,
        }
    }
}

/// Opens the callers' connections: one each for HTTP/1.1, shared for HTTP/2 and gRPC.
async fn open_all(dest: &Dest, callers: usize, tally: &mut Tally) -> Vec<Option<Conn>> {
    let mut out = Vec::with_capacity(callers);
    if dest.shares_connections() {
        let mut shared: Option<Conn> = None;
        for i in 0..callers {
            if i % CALLERS_PER_H2_CONNECTION == 0 {
                shared = match dest.open(None).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tally.error(e);
                        None
                    }
                };
            }
            out.push(shared.as_ref().and_then(Dest::share));
        }
        return out;
    }
    let mut set = JoinSet::new();
    for i in 0..callers {
        let dest = dest.clone();
        set.spawn(async move { (i, dest.open(source_addr(i, SOURCE_ADDRS)).await) });
    }
    out.resize_with(callers, || None);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, Ok(c))) => out[i] = Some(c),
            Ok((_, Err(e))) => tally.error(e),
            Err(e) => tally.error(format!("connect task: {e}")),
        }
    }
    out
}

struct Shared {
    dest: Dest,
    next_id: AtomicU64,
    recorded: AtomicU64,
    spec: LoadSpec,
    /// Every caller finished its warm-up here; the recorded part starts at release.
    warmed: Barrier,
    start: OnceLock<Instant>,
}

/// One call on `conn` (reconnecting first when it closed); `None` when the phase is over.
async fn one_call(
    shared: &Shared,
    index: usize,
    conn: &mut Option<Conn>,
    t: &mut Tally,
) -> Option<Duration> {
    let spec = shared.spec;
    if !conn.as_ref().is_some_and(Conn::is_open) {
        match shared.dest.open(source_addr(index, SOURCE_ADDRS)).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                t.error(e);
                tokio::time::sleep(RECONNECT_PAUSE).await;
                return None;
            }
        }
    }
    let c = conn.as_mut()?;
    let (server, method) = shared.dest.parts();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let began = Instant::now();
    match tokio::time::timeout(spec.call_timeout, c.call(server, method, id)).await {
        Ok(Ok(())) => Some(began.elapsed()),
        Ok(Err(e)) => {
            t.error(e);
            None
        }
        Err(_) => {
            t.error(format!("no answer within {:?}", spec.call_timeout));
            *conn = None;
            None
        }
    }
}

/// One caller: warm-up (unrecorded), the barrier, then calls until the shared count or the
/// deadline is reached.
async fn caller(shared: Arc<Shared>, index: usize, mut conn: Option<Conn>) -> Tally {
    let mut t = Tally {
        lat: Latencies::new(),
        ok: 0,
        errors: BTreeMap::new(),
    };
    let spec = shared.spec;
    let warm_until = Instant::now() + spec.max_time;
    let mut warm = Tally {
        lat: Latencies::new(),
        ok: 0,
        errors: BTreeMap::new(),
    };
    for _ in 0..spec.warmup_per_caller {
        if Instant::now() >= warm_until {
            break;
        }
        let _ = one_call(&shared, index, &mut conn, &mut warm).await;
    }
    shared.warmed.wait().await;
    let start = *shared.start.get_or_init(Instant::now);
    let deadline = start + spec.max_time;
    while Instant::now() < deadline
        && shared.recorded.fetch_add(1, Ordering::Relaxed) < spec.max_calls
    {
        if let Some(took) = one_call(&shared, index, &mut conn, &mut t).await {
            t.lat.record(took);
            t.ok += 1;
        }
    }
    t
}

/// Runs one phase against `dest`.
pub async fn run(dest: &Dest, spec: LoadSpec) -> LoadFigures {
    let mut total = Tally {
        lat: Latencies::new(),
        ok: 0,
        errors: BTreeMap::new(),
    };
    let conns = open_all(dest, spec.callers, &mut total).await;
    let shared = Arc::new(Shared {
        dest: dest.clone(),
        next_id: AtomicU64::new(1),
        recorded: AtomicU64::new(0),
        spec,
        warmed: Barrier::new(spec.callers.max(1)),
        start: OnceLock::new(),
    });
    let mut set = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        set.spawn(caller(shared.clone(), i, conn));
    }
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(t) => {
                total.lat.merge(&t.lat);
                total.ok += t.ok;
                for (k, v) in t.errors {
                    *total.errors.entry(k).or_default() += v;
                }
            }
            Err(e) => total.error(format!("caller task: {e}")),
        }
    }
    let wall = shared.start.get().map_or(Duration::ZERO, Instant::elapsed);
    let errors = total.errors.values().sum();
    let secs = wall.as_secs_f64();
    LoadFigures {
        callers: spec.callers,
        calls_ok: total.ok,
        errors,
        error_reasons: total.errors,
        wall_seconds: secs,
        calls_per_sec: if secs > 0.0 {
            total.ok as f64 / secs
        } else {
            0.0
        },
        latency: total.lat.summary(),
    }
}

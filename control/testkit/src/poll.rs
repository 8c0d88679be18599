//! Bounded waiting for state that offers no notification to wait on: a counter read over
//! `/metrics` or `proxy ctl stats`, a Redis client's background reconnect. Each helper checks, backs
//! off (10 ms doubling to 200 ms), and checks again until the check yields a value or the bound
//! passes. This module is the one place the integration tests wait by time; everything with a
//! readiness signal (a log line, a closed socket, a task's end) waits on that instead.

use std::future::Future;
use std::time::{Duration, Instant};

/// Default bound: generous, so a loaded machine is never the reason a check fails.
pub const POLL_BOUND: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// Polls `check` until it yields `Some`, at most `bound`; panics naming `what` otherwise.
pub async fn until<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    let mut backoff = FIRST_BACKOFF;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {bound:?}"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// [`until`] for a blocking check on a plain thread.
pub fn until_blocking<T>(what: &str, bound: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + bound;
    let mut backoff = FIRST_BACKOFF;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {bound:?}"
        );
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

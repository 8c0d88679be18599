//! Consumes the engine's pair events on a plain thread (the engine never waits for us; an
//! unread event channel would only count drops) and logs them at debug level.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use tandem_engine::PairEvent;
use tracing::{debug, warn};

/// How often the event thread checks whether it should stop.
const POLL: Duration = Duration::from_millis(200);

/// The event thread; [`EventLog::stop`] joins it.
pub struct EventLog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EventLog {
    /// Starts consuming `events`.
    pub fn start(events: Receiver<PairEvent>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("proxy-events".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    match events.recv_timeout(POLL) {
                        Ok(PairEvent::Paired { id }) => debug!(pair = %id, "paired"),
                        Ok(PairEvent::Closed {
                            id,
                            reason,
                            bytes_a_to_b,
                            bytes_b_to_a,
                        }) => debug!(
                            pair = %id,
                            reason = reason.as_str(),
                            bytes_a_to_b,
                            bytes_b_to_a,
                            "pair closed"
                        ),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| warn!(error = %e, "cannot start the event thread; events are dropped"))
            .ok();
        Self { stop, thread }
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

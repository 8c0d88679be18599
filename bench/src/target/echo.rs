//! The backend of the relay baselines and of direct TCP in the setup-rate run: threads that
//! accept, echo one message and close.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::net::accept_timeout;

/// Bytes each setup-rate operation echoes.
pub const ECHO_LEN: usize = 64;
/// How often an idle echo thread checks for stop, in milliseconds (bounds shutdown time).
const STOP_POLL: Duration = Duration::from_millis(50);

/// Echo threads on a shared listener; stopped and joined on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServer {
    /// Starts `threads` echo threads on `listener`.
    pub fn start(listener: &TcpListener, threads: usize) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let l = listener.try_clone()?;
            let stop = stop.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("bench-echo-{i}"))
                    .stack_size(64 * 1024)
                    .spawn(move || echo_loop(&l, &stop))?,
            );
        }
        Ok(EchoServer {
            stop,
            threads: handles,
        })
    }
}

fn echo_loop(l: &TcpListener, stop: &AtomicBool) {
    let mut buf = [0u8; ECHO_LEN];
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(mut s)) = accept_timeout(l, STOP_POLL) else {
            continue;
        };
        // A failed echo shows on the client side as a failed operation.
        if s.read_exact(&mut buf).is_ok() {
            let _ = s.write_all(&buf);
            // Wait for the client's close so the server side does not hold TIME_WAIT.
            let _ = s.read(&mut buf);
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

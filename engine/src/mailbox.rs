//! Bounded cross-thread mailbox into one core. Senders are any thread (control plane, other
//! cores); the one receiver is a task on the core. Waking crosses threads through monoio's
//! `sync` feature (the waker unparks the owning runtime through its eventfd).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

#[derive(Debug)]
struct State<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
    closed: bool,
}

/// A bounded multi-producer, single-consumer queue. The lock is held for a push or a pop only,
/// never across an `.await`.
#[derive(Debug)]
pub struct Mailbox<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

/// Why a message was not delivered; the message comes back.
#[derive(Debug)]
pub enum SendError<T> {
    /// `capacity` messages are queued.
    Full(T),
    /// The core stopped.
    Closed(T),
}

impl<T> Mailbox<T> {
    /// A mailbox holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Mailbox {
            capacity,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic while holding this lock can only come from VecDeque allocation failure;
        // the queue is still consistent, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `msg` unless full or closed, and wakes the core.
    pub fn try_send(&self, msg: T) -> Result<(), SendError<T>> {
        let waker = {
            let mut s = self.lock();
            if s.closed {
                return Err(SendError::Closed(msg));
            }
            if s.queue.len() >= self.capacity {
                return Err(SendError::Full(msg));
            }
            s.queue.push_back(msg);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Takes the next message without waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.lock().queue.pop_front()
    }

    /// Waits for the next message (single consumer).
    pub async fn recv(&self) -> T {
        poll_fn(|cx| {
            let mut s = self.lock();
            match s.queue.pop_front() {
                Some(m) => Poll::Ready(m),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Refuses further messages and returns those still queued (the caller drops them,
    /// which closes any socket they carry).
    pub fn close(&self) -> Vec<T> {
        let mut s = self.lock();
        s.closed = true;
        s.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bounded_and_closable() {
        let m = Mailbox::new(2);
        assert!(m.try_send(1).is_ok());
        assert!(m.try_send(2).is_ok());
        assert!(matches!(m.try_send(3), Err(SendError::Full(3))));
        assert_eq!(m.try_recv(), Some(1));
        assert_eq!(m.close(), vec![2]);
        assert!(matches!(m.try_send(4), Err(SendError::Closed(4))));
    }

    #[test]
    fn wakes_a_monoio_core_from_another_thread() {
        let m = Arc::new(Mailbox::new(4));
        let m2 = m.clone();
        let sender = std::thread::spawn(move || {
            for i in 0..100u32 {
                while m2.try_send(i).is_err() {
                    std::thread::yield_now();
                }
            }
        });
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        let sum = rt.block_on(async move {
            let mut sum = 0;
            for _ in 0..100 {
                sum += m.recv().await;
            }
            sum
        });
        sender.join().unwrap();
        assert_eq!(sum, (0..100).sum::<u32>());
    }
}

//! A one-shot, core-local broadcast (stop accepting, close everything). Not `Send`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Debug, Default)]
struct State {
    fired: bool,
    waiters: Slab<Waker>,
}

/// Fired once; every `wait()` then completes. Waiters are bounded by the tasks on the core.
#[derive(Clone, Debug, Default)]
pub struct LocalSignal(Rc<RefCell<State>>);

impl LocalSignal {
    /// A signal not yet fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal and wakes every waiter.
    pub fn fire(&self) {
        let wakers: Vec<Waker> = {
            let mut s = self.0.borrow_mut();
            s.fired = true;
            s.waiters.drain().collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// True once fired.
    pub fn is_fired(&self) -> bool {
        self.0.borrow().fired
    }

    /// Completes when the signal fires.
    pub fn wait(&self) -> Wait {
        Wait {
            signal: self.clone(),
            key: None,
        }
    }
}

/// Future of [`LocalSignal::wait`].
#[derive(Debug)]
pub struct Wait {
    signal: LocalSignal,
    key: Option<usize>,
}

impl Future for Wait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.signal.0.borrow_mut();
        if s.fired {
            this.key = None;
            return Poll::Ready(());
        }
        match this.key {
            Some(k) if s.waiters.contains(k) => s.waiters[k] = cx.waker().clone(),
            _ => this.key = Some(s.waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            let mut s = self.signal.0.borrow_mut();
            if s.waiters.contains(k) {
                s.waiters.remove(k);
            }
        }
    }
}

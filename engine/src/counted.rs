//! A core's counted tasks: every spawned future carries a guard that keeps the core's live-task
//! count, so drain can wait (bounded) until they have all ended.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// How many counted tasks are alive on one core. Core-local (`Rc`, `Cell`).
#[derive(Debug, Default)]
pub(crate) struct TaskCount(Rc<Cell<usize>>);

impl TaskCount {
    /// Tasks alive now.
    pub(crate) fn get(&self) -> usize {
        self.0.get()
    }

    /// `fut`, counted until it ends or is dropped.
    pub(crate) fn wrap<F: Future>(&self, fut: F) -> Counted<F> {
        self.0.set(self.0.get() + 1);
        Counted {
            fut,
            _guard: TaskGuard(self.0.clone()),
        }
    }
}

/// Decrements the count when its task ends or is dropped.
struct TaskGuard(Rc<Cell<usize>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// A spawned task with its count guard. A struct rather than an `async` block: an awaited
/// captured future is stored twice in an `async` block's state (rust-lang/rust#62958), which
/// would double every task's allocation.
pub(crate) struct Counted<F> {
    fut: F,
    _guard: TaskGuard,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of `Counted`, which
        // has no Drop impl and no Unpin impl, and it is dropped in place with it.
        unsafe { self.map_unchecked_mut(|c| &mut c.fut) }.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_counts_until_it_ends_or_is_dropped() {
        let count = TaskCount::default();
        let done = count.wrap(std::future::ready(()));
        let pending = count.wrap(std::future::pending::<()>());
        assert_eq!(count.get(), 2);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut done = Box::pin(done);
        assert!(done.as_mut().poll(&mut cx).is_ready());
        drop(done);
        assert_eq!(count.get(), 1);
        drop(pending);
        assert_eq!(count.get(), 0);
    }
}

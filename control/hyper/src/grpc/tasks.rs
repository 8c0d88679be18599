//! A set of spawned tasks that stays bounded (finished tasks are reaped on every spawn) and is
//! aborted and awaited on shutdown: nothing is detached.

use std::future::Future;
use std::sync::Mutex;

use tokio::task::JoinSet;

/// Tracked tasks.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    set: Mutex<Option<JoinSet<()>>>,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Self {
            set: Mutex::new(Some(JoinSet::new())),
        }
    }

    /// Spawns `task`; after [`Tasks::shutdown`] the task is dropped instead.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut guard = self.set.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = guard.as_mut() {
            while set.try_join_next().is_some() {}
            set.spawn(task);
        }
    }

    /// Aborts every task and waits for them to end.
    pub(crate) async fn shutdown(&self) {
        let set = self.set.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut set) = set {
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }
}

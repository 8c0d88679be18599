//! One shutdown signal for every server: a trigger and any number of cheap waiters.

use tokio::sync::watch;

/// Starts a shutdown. Dropping it without [`ShutdownTrigger::trigger`] never triggers.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Resolves once the shutdown starts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its first waiter.
pub fn shutdown() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Another waiter.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Resolves once the shutdown starts (never, if the trigger is dropped without triggering).
    pub async fn wait(mut self) {
        self.triggered().await;
    }

    /// Resolves once the shutdown starts; unlike [`Shutdown::wait`] it borrows, so a loop can
    /// `select!` on it every turn.
    pub async fn triggered(&mut self) {
        if self.0.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_the_trigger() {
        let (trigger, first) = shutdown();
        let second = trigger.subscribe();
        assert!(!first.is_triggered());
        let waiting = tokio::spawn(second.wait());
        trigger.trigger();
        trigger.trigger();
        first.clone().wait().await;
        waiting.await.unwrap();
        assert!(first.is_triggered());
    }

    #[tokio::test]
    async fn a_dropped_trigger_never_fires() {
        let (trigger, waiter) = shutdown();
        drop(trigger);
        let wait = tokio::time::timeout(std::time::Duration::from_millis(20), waiter.wait());
        assert!(wait.await.is_err());
    }
}

//! One shutdown signal for every server: a trigger and any number of cheap waiters. Dropping the
//! trigger starts the shutdown too, so a server whose owner is gone (an error half-way through
//! start-up, a cancelled future) never keeps running unowned.

use tokio::sync::watch;

/// Starts a shutdown: on [`ShutdownTrigger::trigger`] or when dropped.
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

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

impl Shutdown {
    /// Resolves once the shutdown starts.
    pub async fn wait(mut self) {
        self.triggered().await;
    }

    /// Resolves once the shutdown starts; unlike [`Shutdown::wait`] it borrows, so a loop can
    /// `select!` on it every turn.
    pub async fn triggered(&mut self) {
        // The sender sends `true` before it is dropped, so an error means it has been sent.
        let _ = self.0.wait_for(|s| *s).await;
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
    async fn a_dropped_trigger_starts_the_shutdown() {
        let (trigger, mut waiter) = shutdown();
        let waiting = tokio::spawn(waiter.clone().wait());
        assert!(!waiter.is_triggered());
        drop(trigger);
        waiting.await.unwrap();
        waiter.triggered().await;
        assert!(waiter.is_triggered());
    }

    #[tokio::test]
    async fn an_untriggered_shutdown_keeps_waiting() {
        let (_trigger, waiter) = shutdown();
        let wait = tokio::time::timeout(std::time::Duration::from_millis(20), waiter.wait());
        assert!(wait.await.is_err());
    }
}

//! The engine's error type at its public boundary.

use std::io;

/// Errors returned by the engine's public API (`Engine::start`, `EngineHandle`).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A setting is out of its documented bounds.
    #[error("invalid engine setting `{key}`: {reason}")]
    Config {
        /// The setting's name.
        key: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Binding a data port failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A worker thread could not be started or its runtime could not be built.
    #[error("cannot start worker for core {core}: {source}")]
    Worker {
        /// Index of the worker.
        core: usize,
        /// The underlying error.
        source: io::Error,
    },
    /// The owning core's mailbox is full; the caller may retry later.
    #[error("mailbox of core {core} is full")]
    MailboxFull {
        /// Index of the core.
        core: usize,
    },
    /// The engine is draining or stopped and takes no new work.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// A worker thread panicked while it was being joined.
    #[error("worker thread for core {core} panicked")]
    WorkerPanicked {
        /// Index of the core.
        core: usize,
    },
}

impl EngineError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Config { .. } => "config",
            EngineError::Bind { .. } => "bind",
            EngineError::Worker { .. } => "worker",
            EngineError::MailboxFull { .. } => "mailbox_full",
            EngineError::ShuttingDown => "shutting_down",
            EngineError::WorkerPanicked { .. } => "worker_panicked",
        }
    }
}

//! Binary upgrade: what one process hands the next (`state`), the versioned format it travels
//! in (`wire`, sans-IO), and the conversation over a Unix socket with the sockets passed by
//! `SCM_RIGHTS` (`fdpass`). How the engine stops and adopts pairs is in `export.rs`.

mod bundle;
pub mod fdpass;
pub mod state;
pub mod wire;

pub use bundle::Bundle;
pub use state::{
    FdIndex, HandoverState, IssuedPair, ListenerEntry, ListenerRole, LivePair, WaitingSide,
};
pub use wire::{Message, WireError};

/// A hand-over that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The hand-over socket failed (closed, timed out, ...).
    #[error("hand-over I/O failed while {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A frame could not be read.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The peer broke the conversation's order.
    #[error("hand-over protocol error: {0}")]
    Protocol(&'static str),
    /// The peer refused, and said why.
    #[error("the other process refused the hand-over: {0}")]
    Refused(String),
    /// The state does not fit this engine (core count, ...).
    #[error("the hand-over state does not fit this engine: {0}")]
    Mismatch(String),
    /// The engine is not running (or is already handing over).
    #[error("the engine cannot hand over now: {0}")]
    NotNow(&'static str),
    /// The inherited engine could not start.
    #[error(transparent)]
    Engine(#[from] crate::error::EngineError),
}

impl HandoverError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| HandoverError::Io { what, source }
    }

    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            HandoverError::Io { .. } => "io",
            HandoverError::Wire(e) => e.kind(),
            HandoverError::Protocol(_) => "protocol",
            HandoverError::Refused(_) => "refused",
            HandoverError::Mismatch(_) => "mismatch",
            HandoverError::NotNow(_) => "not_now",
            HandoverError::Engine(e) => e.kind(),
        }
    }
}

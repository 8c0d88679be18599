//! The data plane: a thread-per-core relay that pairs inbound connections by single-use token
//! and moves bytes between them with `splice(2)`. See ARCHITECTURE.md.

mod accept;
mod admission;
pub mod clienthello;
pub mod config;
mod core;
mod core_msg;
mod counted;
pub mod error;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
pub mod handover;
pub mod limiter;
mod listener;
pub mod mailbox;
pub mod pair_table;
mod pair_types;
pub mod preamble;
mod proxied;
pub mod relay;
mod runtime;
mod shared;
pub mod signal;
pub mod stats;
pub mod token;
mod worker;

pub use clienthello::ClientHelloInfo;
pub use config::{Driver, DriverInUse, EngineConfig, MAX_ADDRESSES_PER_PORT, RELEASE_MEMORY_EVERY};
pub use error::EngineError;
pub use events::{PairEvent, RefuseAll, SniResolver};
pub use handle::{Adopted, Engine, EngineHandle, LocalAddrs, PairTicket};
pub use limiter::AcceptRate;
pub use pair_table::{PairId, PairKind, Port, Refusal, Side};
pub use relay::CloseReason;
pub use relay::throttle::{BandwidthLimits, ByteRate, OperatorBandwidth};
pub use stats::{CoreStatsSnapshot, PAIR_SETUP_BOUNDS_US, SetupSnapshot};
pub use token::{CoreId, Token};

#[cfg(test)]
mod module_graph_tests;

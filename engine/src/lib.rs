//! The data plane: a thread-per-core relay that pairs inbound connections by single-use token
//! and moves bytes between them with `splice(2)`. See ARCHITECTURE.md.

pub mod clienthello;
pub mod config;
pub mod error;
pub mod pair_table;
pub mod preamble;
pub mod token;

pub use config::{Driver, DriverInUse, EngineConfig};
pub use error::EngineError;
pub use pair_table::{PairId, PairKind, Port, Refusal, Side};
pub use token::{CoreId, Token};

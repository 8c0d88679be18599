//! Library side of the command lines: what `hyper sd …` and `hyper certs` do, callable from tests.

mod error;
mod records;

pub use error::CliError;
pub use records::{MAX_INPUT_BYTES, get_entries, sign, submit_records, verify};

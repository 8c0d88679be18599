//! Value types every Tandem crate shares and nothing else: `host:port` addresses, rates with a
//! sans-IO token bucket, and the serving kit's typed limits. No I/O, no async runtime.

pub mod bucket;
mod host_port;
pub mod serving_config;

pub use bucket::{Rate, TokenBucket};
pub use host_port::{HostPort, HostPortError};
pub use serving_config::*;

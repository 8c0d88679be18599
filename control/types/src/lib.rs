//! Value types every Tandem crate shares and nothing else: `host:port` addresses, forward proxy
//! URLs, rates with a sans-IO token bucket, and the serving kit's typed limits. No I/O, no async
//! runtime.

pub mod bucket;
mod forward_proxy;
mod host_port;
pub mod serving_config;

pub use bucket::{Rate, TokenBucket};
pub use forward_proxy::{Credentials, DEFAULT_FORWARD_PROXY_PORT, ForwardProxy, ForwardProxyError};
pub use host_port::HostPort;
pub use serving_config::*;

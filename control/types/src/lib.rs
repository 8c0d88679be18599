//! Value types every Tandem crate shares and nothing else: operator names, pairing tokens,
//! `host:port` addresses, forward proxy URLs, rates with a sans-IO token bucket, and the serving
//! kit's typed limits. No sockets, no async runtime (only [`Token::random`] reads the OS-seeded
//! CSPRNG).

pub mod bucket;
mod forward_proxy;
mod host_port;
pub mod operator;
pub mod proxy_protocol;
pub mod serving_config;
pub mod token;

pub use bucket::{Rate, TokenBucket};
pub use forward_proxy::{Credentials, DEFAULT_FORWARD_PROXY_PORT, ForwardProxy, ForwardProxyError};
pub use host_port::{HostPort, HostPortError};
pub use operator::{MAX_OPERATOR_NAME_BYTES, OperatorName, OperatorNameError};
pub use proxy_protocol::{Cidr, CidrError, ProxyProtocol, ProxyProtocolError};
pub use serving_config::*;
pub use token::{MAX_TOKEN_BASE64_CHARS, TOKEN_LEN, Token, TokenError};

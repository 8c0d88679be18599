//! The pairing `endpoint` a proxy names (SPEC §4.3, §4.5): checked for shape and size before it is
//! dialed (ownership is checked against the proxy's directory entry, see [`super::P2pError`]).

use super::P2pError;

/// Longest `endpoint` (`HOST:PORT`) we dial, in bytes: a 253-byte DNS name, `:` and a port, with room.
pub const MAX_ENDPOINT_BYTES: usize = 300;

/// Checks an `endpoint` value (non-empty, bounded, `HOST:PORT`-shaped).
pub(crate) fn endpoint(text: &str) -> Result<&str, P2pError> {
    if text.is_empty() || text.len() > MAX_ENDPOINT_BYTES {
        return Err(P2pError::invalid(
            "endpoint",
            format!("must be HOST:PORT of 1 to {MAX_ENDPOINT_BYTES} bytes"),
        ));
    }
    let port = text.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
    if !matches!(port, Some(Ok(_))) {
        return Err(P2pError::invalid("endpoint", "must be HOST:PORT"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_host_port() {
        assert_eq!(endpoint("localhost:9999").unwrap(), "localhost:9999");
        assert_eq!(endpoint("[::1]:1").unwrap(), "[::1]:1");
        for bad in ["", "localhost", "h:port", "h:70000"] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        assert!(endpoint(&format!("{}:1", "a".repeat(MAX_ENDPOINT_BYTES))).is_err());
    }
}

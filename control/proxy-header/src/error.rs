//! Why an inbound header was refused.

/// A header that is not one we accept; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first bytes are neither `PROXY ` nor the v2 signature.
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    /// A v1 line reached its 107-byte bound without `\r\n`.
    #[error("PROXY v1 line longer than 107 bytes")]
    V1TooLong,
    /// A v1 line that does not follow the grammar (`what` names the part).
    #[error("malformed PROXY v1 line: {what}")]
    V1Malformed {
        /// The part that is wrong.
        what: &'static str,
    },
    /// A v2 header whose version nibble is not 2.
    #[error("PROXY v2 header with version {version}")]
    V2Version {
        /// The version nibble.
        version: u8,
    },
    /// A v2 command other than LOCAL (0) or PROXY (1).
    #[error("PROXY v2 header with unknown command {command}")]
    V2Command {
        /// The command nibble.
        command: u8,
    },
    /// A v2 address family or transport we do not take (UDP, or an unknown family byte).
    #[error("PROXY v2 header with unsupported family/transport byte {byte:#04x}")]
    V2Unsupported {
        /// The family/transport byte.
        byte: u8,
    },
    /// The v2 address block is shorter than its family's addresses.
    #[error("PROXY v2 address block of {len} bytes is too short for its family")]
    V2AddressTooShort {
        /// The declared length.
        len: usize,
    },
    /// A TLV runs past the end of the header.
    #[error("PROXY v2 TLV runs past the end of the header")]
    V2Tlv,
    /// The v2 header declares more bytes than this reader's bound.
    #[error("PROXY v2 header of {len} bytes is over the bound of {max}")]
    Oversized {
        /// The header's total length (16 + declared length).
        len: usize,
        /// The reader's bound.
        max: usize,
    },
}

impl HeaderError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            HeaderError::Missing => "missing",
            HeaderError::V1TooLong => "v1_too_long",
            HeaderError::V1Malformed { .. } => "v1_malformed",
            HeaderError::V2Version { .. } => "v2_version",
            HeaderError::V2Command { .. } => "v2_command",
            HeaderError::V2Unsupported { .. } => "v2_unsupported",
            HeaderError::V2AddressTooShort { .. } => "v2_address_too_short",
            HeaderError::V2Tlv => "v2_tlv",
            HeaderError::Oversized { .. } => "oversized",
        }
    }
}

//! [`DataEntry`] and its byte encoding, shared by every datastore (sans-IO).
//!
//! Layout (the original's `ToBytes`/`FromBytes`), little endian:
//!
//! ```text
//! [version = 1: u8][type: u8][id_len: u16 LE][id: id_len bytes][data: the rest]
//! ```

use thiserror::Error;

/// The only entry format version there is.
pub const ENTRY_VERSION: u8 = 1;

/// Bytes before the id: version, type and the id length.
pub const ENTRY_HEADER_LEN: usize = 4;

/// Largest encoded entry, in bytes: 8 MiB. The file format itself allows up to
/// `u16::MAX` chunks of 231 bytes (about 14.4 MiB); directory records and proxy announcements
/// are a few KiB, so 8 MiB leaves ample room while bounding what one reader buffers per entry.
pub const MAX_ENTRY_LEN: usize = 8 * 1024 * 1024;

/// One stored record: a type tag, an id and opaque data (the original's `DataEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataEntry {
    /// What the data is (the directory uses 1 for a signed change record).
    pub type_: u8,
    /// The entry's id (the directory uses 16 random bytes); at most `u16::MAX` bytes.
    pub id: Vec<u8>,
    /// The payload.
    pub data: Vec<u8>,
}

/// Why bytes are not a valid entry, or an entry cannot be encoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// Shorter than the 4-byte header.
    #[error("entry is {len} bytes, shorter than its 4-byte header")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// Unknown version byte.
    #[error("unknown entry version {0}")]
    Version(u8),
    /// The id length points past the end of the entry.
    #[error("entry id length {id_len} exceeds the {available} bytes after the header")]
    IdOutOfBounds {
        /// Declared id length.
        id_len: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// The id does not fit the u16 length field.
    #[error("entry id is {0} bytes, more than 65535")]
    IdTooLong(usize),
    /// The encoded entry exceeds [`MAX_ENTRY_LEN`].
    #[error("entry is {0} bytes, more than the {MAX_ENTRY_LEN}-byte limit")]
    TooLarge(usize),
}

impl DataEntry {
    /// Length of [`DataEntry::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        ENTRY_HEADER_LEN + self.id.len() + self.data.len()
    }

    /// Encodes the entry; fails when the id exceeds `u16::MAX` bytes or the whole exceeds
    /// [`MAX_ENTRY_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let id_len =
            u16::try_from(self.id.len()).map_err(|_| EntryError::IdTooLong(self.id.len()))?;
        let len = self.encoded_len();
        if len > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge(len));
        }
        let mut out = Vec::with_capacity(len);
        out.push(ENTRY_VERSION);
        out.push(self.type_);
        out.extend_from_slice(&id_len.to_le_bytes());
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// Decodes one entry from exactly `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        let Some((header, rest)) = bytes.split_first_chunk::<ENTRY_HEADER_LEN>() else {
            return Err(EntryError::TooShort { len: bytes.len() });
        };
        let [version, type_, l0, l1] = *header;
        if version != ENTRY_VERSION {
            return Err(EntryError::Version(version));
        }
        let id_len = usize::from(u16::from_le_bytes([l0, l1]));
        if id_len > rest.len() {
            return Err(EntryError::IdOutOfBounds {
                id_len,
                available: rest.len(),
            });
        }
        let (id, data) = rest.split_at(id_len);
        Ok(Self {
            type_,
            id: id.to_vec(),
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_original_layout() {
        let e = DataEntry {
            type_: 1,
            id: vec![0xaa, 0xbb],
            data: b"xyz".to_vec(),
        };
        assert_eq!(
            e.encode().unwrap(),
            vec![1, 1, 2, 0, 0xaa, 0xbb, b'x', b'y', b'z']
        );
    }

    #[test]
    fn rejects_bad_bytes() {
        assert_eq!(
            DataEntry::decode(&[1, 0, 0]),
            Err(EntryError::TooShort { len: 3 })
        );
        assert_eq!(
            DataEntry::decode(&[2, 0, 0, 0]),
            Err(EntryError::Version(2))
        );
        assert_eq!(
            DataEntry::decode(&[1, 0, 3, 0, 9, 9]),
            Err(EntryError::IdOutOfBounds {
                id_len: 3,
                available: 2
            })
        );
    }

    #[test]
    fn rejects_oversized_entries() {
        let long_id = DataEntry {
            type_: 0,
            id: vec![0; 70_000],
            data: vec![],
        };
        assert_eq!(long_id.encode(), Err(EntryError::IdTooLong(70_000)));
        let big = DataEntry {
            type_: 0,
            id: vec![],
            data: vec![0; MAX_ENTRY_LEN],
        };
        assert_eq!(big.encode(), Err(EntryError::TooLarge(MAX_ENTRY_LEN + 4)));
    }

    proptest! {
        #[test]
        fn round_trips(type_: u8, id in proptest::collection::vec(any::<u8>(), 0..300),
                       data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let e = DataEntry { type_, id, data };
            let bytes = e.encode().unwrap();
            prop_assert_eq!(bytes.len(), e.encoded_len());
            prop_assert_eq!(DataEntry::decode(&bytes).unwrap(), e);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = DataEntry::decode(&bytes);
        }
    }
}

//! The `Hyper` service's codec: [`crate::wire`]'s messages, whose `Struct` fields are
//! `serde_json` objects, encoded and decoded by [`crate::json_struct`] with no `prost_types` tree
//! in between. The bytes are prost's for the same message (the tests compare both).

use std::marker::PhantomData;

use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

pub use crate::wire::{FastDecode, FastEncode};

/// Bytes reserved up front for [`Encoded::of`]: most `Hyper` requests (a method, an id, a few
/// params) fit, larger ones grow the buffer as usual.
const ENCODE_CAPACITY: usize = 512;

/// A message encoded once, sent as often as needed: a retried call resends the same bytes (a
/// reference count, no copy of the message tree). Encoding it copies the bytes into tonic's frame
/// buffer, where tonic's `max_encoding_message_size` still applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(Bytes);

impl Encoded {
    /// `message`'s bytes, exactly as [`FastEncode`] writes them on the wire.
    pub fn of(message: &impl FastEncode) -> Self {
        let mut buf = BytesMut::with_capacity(ENCODE_CAPACITY);
        message.encode_fast(&mut buf);
        Self(buf.freeze())
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the message encodes to nothing (every field at its default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FastEncode for Encoded {
    fn encode_fast(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}

/// Codec of the generated `Hyper` client and server (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct HyperCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for HyperCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The encoding half of [`HyperCodec`].
#[derive(Debug, Clone, Default)]
pub struct FastEncoder<T>(PhantomData<T>);

impl<T: FastEncode> Encoder for FastEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode_fast(buf);
        Ok(())
    }
}

/// The decoding half of [`HyperCodec`].
#[derive(Debug, Clone, Default)]
pub struct FastDecoder<U>(PhantomData<U>);

impl<U: FastDecode> Decoder for FastDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let len = buf.remaining();
        // tonic hands over one contiguous buffer; anything else is gathered first.
        let item = if buf.chunk().len() == len {
            let item = U::decode_fast(buf.chunk());
            buf.advance(len);
            item
        } else {
            U::decode_fast(&buf.copy_to_bytes(len))
        };
        // As tonic's prost codec reports an undecodable message.
        item.map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}

impl<T, U> Codec for HyperCodec<T, U>
where
    T: FastEncode + Send + 'static,
    U: FastDecode + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = FastEncoder<T>;
    type Decoder = FastDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        FastEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        FastDecoder(PhantomData)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::wire::Request;

    #[test]
    fn an_encoded_message_writes_the_bytes_of_the_message() {
        let request = Request {
            method: "hd-2._ping".into(),
            params: json!({"a": [1, null, "x"], "b": {"c": 2.5}})
                .as_object()
                .cloned(),
            id: "hd-2._ping(n:1)".into(),
            client_name: "hd-1".into(),
        };
        let mut direct = BytesMut::new();
        request.encode_fast(&mut direct);
        let encoded = Encoded::of(&request);
        assert_eq!(encoded.bytes().as_ref(), direct.as_ref());
        let mut again = BytesMut::new();
        encoded.encode_fast(&mut again);
        encoded.encode_fast(&mut again);
        assert_eq!(again.len(), 2 * direct.len(), "resent whole each time");
        assert_eq!(&again[..direct.len()], direct.as_ref());
        assert!(Encoded::of(&Request::default()).is_empty());
        assert_eq!(encoded.len(), direct.len());
    }
}

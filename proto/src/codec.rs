//! The `Hyper` service's codec: [`crate::wire`]'s messages, whose `Struct` fields are
//! `serde_json` objects, encoded and decoded by [`crate::json_struct`] with no `prost_types` tree
//! in between. The bytes are prost's for the same message (the tests compare both).

use std::marker::PhantomData;

use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

pub use crate::wire::{FastDecode, FastEncode};

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

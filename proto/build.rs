//! Generates the `Hyper` messages, server and client from `hyper.proto`, and the proxy's
//! `ControlService` from `control.proto`, with the vendored `protoc`, so that a fresh machine needs
//! no system protoc.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let includes = [std::path::PathBuf::from("."), include];
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    // The Hyper service's messages are src/wire.rs's (Struct fields as serde_json objects) with
    // their own codec (src/codec.rs): no prost_types tree between the bytes and the JSON.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::HyperCodec")
        .extern_path(".Request", "crate::wire::Request")
        .extern_path(".Response", "crate::wire::Response")
        .extern_path(".Error", "crate::wire::Error")
        .compile_with_config(config, &["hyper.proto".into()], &includes)?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["control.proto".into()], &includes)?;
    println!("cargo:rerun-if-changed=hyper.proto");
    println!("cargo:rerun-if-changed=control.proto");
    Ok(())
}

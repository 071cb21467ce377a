//! Generates the tonic/prost code of `proto/tortie/v1/*.proto`.
//!
//! protoc: `$PROTOC` when set (the workspace's `.cargo/config.toml` sets it to `tools/protoc`, the
//! vendored binary), else the binary of the `protoc-bin-vendored` build-dependency. The
//! well-known types (`google/protobuf/*.proto`) always come from that crate too, so no system
//! protoc or include directory is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => PathBuf::from(p),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let well_known = protoc_bin_vendored::include_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Calls added to the service later have a default (UNIMPLEMENTED) in the server trait,
        // so a server built before them still compiles.
        .generate_default_stubs(true)
        .compile_with_config(
            config,
            &[PathBuf::from("proto/tortie/v1/tortie.proto")],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-env-changed=PROTOC");
    // Printing any rerun-if line turns off cargo's default of rerunning on every change in
    // the package, so the .proto files must be named (a directory covers files added later).
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

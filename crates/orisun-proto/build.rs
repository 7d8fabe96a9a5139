//! Generates the gRPC code and a file descriptor set (for reflection) from `proto/` (today's
//! package `orisun`) and `proto/legacy/` (older packages still served).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("orisun_descriptor.bin"))
        .compile_protos(
            &[
                "proto/eventstore.proto",
                "proto/admin.proto",
                "proto/pubsub.proto",
                "proto/legacy/eventstore_2025.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

//! Generates the gRPC client of UmaDB's DCB API (`proto/umadb.proto`, our own subset of it) for
//! `--baseline umadb`, with the vendored protoc orisun-proto uses, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/umadb.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

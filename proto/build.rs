//! Compiles `casrap.proto` with protox (a protobuf compiler in Rust: no protoc needed) and
//! generates prost messages and tonic client/server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=casrap.proto");
    let fds = protox::compile(["casrap.proto"], ["."])?;
    // Policy weights as `Bytes`: every watcher's chunks are slices of one published copy.
    tonic_prost_build::configure().bytes(".casrap.v1.PolicyUpdate.weights").compile_fds(fds)?;
    Ok(())
}

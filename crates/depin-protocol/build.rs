//! Compiles `proto/depin/v1/protocol.proto` with the pure-Rust `protox` front end,
//! so building needs no `protoc` on the machine, then generates the prost types.

fn main() {
    let proto = "proto/depin/v1/protocol.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).expect("protocol.proto must compile");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("prost-build must generate the wire types");
}

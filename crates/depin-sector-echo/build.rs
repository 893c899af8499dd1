//! Compiles the sector's own `proto/depin/echo/v1/echo.proto` (pure-Rust
//! `protox`, no `protoc` needed), as every sector compiles its own file.

fn main() {
    let proto = "proto/depin/echo/v1/echo.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).expect("echo.proto must compile");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("prost-build must generate the echo types");
}

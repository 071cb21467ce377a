// Nothing to generate: this script exists so that cargo fetches `protoc-bin-vendored` (a
// build-dependency) before any build script runs; `tools/protoc` then finds its binary for
// etcd-client's build script (see `.cargo/config.toml`).
fn main() {}

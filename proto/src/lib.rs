//! tortie's gRPC API: the `.proto` files under `proto/` and the tonic/prost code generated from
//! them. This crate is the only place that knows protobuf; the agent maps its own types to these
//! messages (`src/api/` of the `tortie` package).
//!
//! The service is `tortie.v1.Tortie` ([`v1::tortie_server::Tortie`] to implement it,
//! [`v1::tortie_client::TortieClient`] to call it). `tortie.v1` only grows: see the compatibility
//! rules at the top of `proto/tortie/v1/tortie.proto`.

/// Package `tortie.v1`.
pub mod v1 {
    tonic::include_proto!("tortie.v1");
}

/// The well-known types the messages use (`Timestamp`, `Duration`).
pub use prost_types;

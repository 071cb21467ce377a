//! BGP for tortie.
//!
//! Bytes from a peer enter through [`wire`], which frames and decodes them under what the OPEN
//! exchange negotiated and applies RFC 7606, so a malformed UPDATE becomes a typed verdict
//! rather than a crash. [`fsm`] is the RFC 4271 session state machine: events and the time go
//! in, actions (send, close, arm a timer, deliver an UPDATE) come out. [`rib`] turns delivered
//! UPDATEs into best paths and multipath groups, feeds the dataplane a coalesced change stream
//! and builds each peer's UPDATEs under the mesh, route reflection and eBGP rules. These three
//! are sans-IO: no socket, no clock, so they are tested in microseconds. With the `driver`
//! feature (on by default), [`transport`] opens and accepts TCP connections with MD5 and GTSM,
//! and [`speaker`] runs a tokio task per peer and a router task that owns the RIB.

pub mod fsm;
pub mod rib;
#[cfg(feature = "driver")]
pub mod speaker;
#[cfg(feature = "driver")]
pub mod transport;
pub mod wire;

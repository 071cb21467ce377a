//! BGP for tortie.
//!
//! Bytes from a peer enter through [`wire`]: [`wire::frame_len`] finds where one message ends in a
//! TCP byte stream, [`wire::decode`] turns it into a [`wire::Message`] under the [`wire::Ctx`]
//! that the OPEN exchange negotiated, and applies the RFC 7606 rules so that a malformed UPDATE
//! becomes a typed verdict (session reset, treat-as-withdraw, attribute discard) instead of a
//! crash. Messages leave through [`wire::encode`]. The codec is sans-IO: it never touches a socket
//! or a clock, so the session state machine and the RIB built on it can be tested in microseconds.

pub mod fsm;
pub mod rib;
pub mod speaker;
pub mod transport;
pub mod wire;

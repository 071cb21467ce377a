//! The session state machine (RFC 4271 section 8), driven with simulated time: one module per
//! state of the RFC tables, plus timers, capabilities, collisions, backoff and input framing.

mod active;
mod backoff;
mod capabilities;
mod collision;
mod connect;
mod established;
mod idle;
mod input;
mod open_confirm;
mod open_sent;
mod support;
mod timers;

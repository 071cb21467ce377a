//! Routing: Adj-RIB-In, decision process, Loc-RIB, Adj-RIB-Out (being written).

pub mod policy;

//! TCP for BGP sessions (being written).

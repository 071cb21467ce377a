//! Calico v3 configuration (being written).

//! Calico BGPFilter policy (being written).

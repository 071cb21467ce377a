//! Desired kernel state, computed from best routes, blocks and pools (being written).

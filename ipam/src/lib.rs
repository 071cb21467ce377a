//! tortie's IP address management. Not built yet: issue 6 adds Calico-style pools, node-affine
//! blocks and their stores.

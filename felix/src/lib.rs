//! tortie's dataplane. Not built yet: issue 5 turns best routes, this node's blocks and the
//! pools into the kernel routes, tunnel devices and neighbour entries the node needs.

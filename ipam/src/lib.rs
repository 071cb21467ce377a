//! tortie's IP address management (being written for issue 6).

pub mod store;

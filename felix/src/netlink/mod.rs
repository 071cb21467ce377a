//! rtnetlink access: batched writes, dumps, devices (being written).

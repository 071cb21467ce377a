//! tortie's gRPC API definitions. Not built yet: issues 7 and 8 add the service.

//! shipping service.

//! cart service.

//! cache service.

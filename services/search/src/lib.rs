//! search service.

//! gateway service.

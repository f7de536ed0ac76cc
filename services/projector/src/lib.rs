//! projector service.

//! notification service.

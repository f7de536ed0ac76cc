//! inventory service.

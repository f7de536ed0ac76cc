//! catalog service.

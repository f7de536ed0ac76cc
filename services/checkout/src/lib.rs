//! checkout service.

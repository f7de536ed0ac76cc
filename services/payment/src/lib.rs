//! payment service.

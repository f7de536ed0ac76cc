//! payment-provider service.

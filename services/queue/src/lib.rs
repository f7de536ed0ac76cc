//! queue service.

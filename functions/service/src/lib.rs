//! The after-sales service: request signatures and the adapters to the outside world (payment
//! gateways, department feedback queues, the workflow engine), each behind a trait with an
//! in-memory implementation for tests and the local stack.

pub mod adapters;
pub mod clock;
pub mod config;
pub mod handlers;
pub mod metrics;
pub mod runtime;
pub mod signature;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

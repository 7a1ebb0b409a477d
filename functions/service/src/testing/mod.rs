//! Test support for this crate and the workspace (enabled by the `testing` feature).

pub mod moto;
pub mod store_contract;

//! Lambda handlers: the workflow's task steps (and the HTTP API).

pub mod accept;
pub mod http;
pub mod respond;
pub mod steps;

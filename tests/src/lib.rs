//! Integration tests live in `tests/tests/`. This library holds what they share:
//! - [`workflow`]: the workflow definitions as the cloud deploys them (with the SAM template's
//!   `${...}` substitutions filled with fake ARNs) and the Mermaid diagram generated from them;
//! - [`stack`]: the real handlers in one process (in-memory store and stub gateways) behind the
//!   interpreter, for the workflow path tests.

pub mod stack;
pub mod workflow;

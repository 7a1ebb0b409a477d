//! Integration tests live in `tests/tests/`. This library holds what they share:
//! - [`workflow`]: the workflow definitions as the cloud deploys them (with the SAM template's
//!   `${...}` substitutions filled with fake ARNs) and the Mermaid diagram generated from them;
//! - [`steps`]: a simulated after-sales world that answers the workflow's Lambda calls exactly as
//!   `docs/workflow-contract.md` specifies, for the workflow path tests.

pub mod steps;
pub mod workflow;

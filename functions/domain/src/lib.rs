//! The after-sales domain: validated types, the canonical request and its parser, the ticket's
//! life, merchant policy, diagnosis and proposals. No AWS, no I/O: every function is pure.

pub mod diagnosis;
pub mod history;
pub mod ids;
pub mod kinds;
pub mod lifecycle;
pub mod money;
pub mod policy;
pub mod proposal;
pub mod request;
pub mod schema;
pub mod ticket;

pub use diagnosis::{Diagnosis, diagnose};
pub use history::History;
pub use ids::{
    Category, CustomerId, IdError, LineId, OrderId, PaymentProvider, PaymentReference, RequestId,
    Sku, TicketId,
};
pub use kinds::{
    Channel, CustomerTier, Department, Disposition, Evidence, EvidenceKind, ExpectedResolution,
    Locale, ProblemKind, ResolutionKind, Responsibility,
};
pub use money::{Amount, Currency, Money, MoneyError};
pub use policy::{Policy, PolicyDuration, PolicyError, WorkflowDeadlines};
pub use proposal::{Proposal, ProposalOption, propose};
pub use request::{
    Customer, Order, OrderLine, Payment, Problem, ProblemLine, Quantity, RequestError,
    ServiceRequest, parse_request,
};

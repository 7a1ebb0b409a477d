//! The after-sales domain: validated types, the canonical request and its parser, the ticket's
//! life, merchant policy, diagnosis and proposals. No AWS, no I/O: every function is pure.

pub mod ids;
pub mod kinds;
pub mod lifecycle;
pub mod money;

pub use ids::{
    Category, CustomerId, IdError, LineId, OrderId, PaymentReference, RequestId, Sku, TicketId,
};
pub use kinds::{
    Channel, CustomerTier, Department, Disposition, Evidence, EvidenceKind, ExpectedResolution,
    Locale, ProblemKind, ResolutionKind, Responsibility,
};
pub use money::{Amount, Currency, Money, MoneyError};
pub mod request;
pub use request::{
    Customer, Order, OrderLine, Payment, Problem, ProblemLine, Quantity, ServiceRequest,
};
pub use request::{RequestError, parse_request};
pub mod schema;
pub mod policy;
pub use policy::{Policy, PolicyDuration, PolicyError};
pub mod history;
pub use history::History;
pub mod diagnosis;
pub use diagnosis::{Diagnosis, diagnose};
pub mod proposal;
pub use proposal::{Proposal, ProposalOption, propose};
pub mod ticket;

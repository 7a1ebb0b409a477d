pub mod feedback;
pub mod notify;
pub mod payment;
pub mod workflow;

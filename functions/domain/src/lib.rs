//! The after-sales domain.

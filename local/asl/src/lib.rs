//! An Amazon States Language interpreter faithful to AWS Step Functions (JSONPath query language).

pub mod expr;

//! `aftersales-local`: the after-sales system on one machine — the HTTP API on localhost, the
//! real workflow run by the `asl` interpreter with the step handlers in-process, and a durable
//! embedded store (redb) standing in for DynamoDB, SQS and the notification channels.

pub mod data_dir;
pub mod demo;
pub mod http;
pub mod inspect;
pub mod process;
pub mod runner;
pub mod serve;
pub mod store;

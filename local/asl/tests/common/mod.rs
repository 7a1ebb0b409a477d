//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use asl::{
    Clock, Execution, ExecutionStatus, ResourceResolver, StartOptions, StateMachine, TaskFailure,
    TaskRequest, VirtualClock,
};
use jiff::Timestamp;
use serde_json::Value;
use std::sync::{Arc, Mutex};

pub fn t0() -> Timestamp {
    "2024-01-01T00:00:00Z".parse().expect("fixed start time")
}

pub fn machine(def: Value) -> StateMachine {
    match StateMachine::from_value(def) {
        Ok(m) => m,
        Err(e) => panic!("definition rejected: {e}"),
    }
}

type Handler = dyn Fn(&TaskRequest, u32) -> Result<Value, TaskFailure> + Send + Sync;

/// A resolver running a closure; records every request with the (virtual) time it was made.
pub struct FnResolver {
    clock: Arc<VirtualClock>,
    handler: Box<Handler>,
    pub calls: Mutex<Vec<(Timestamp, TaskRequest)>>,
}

impl FnResolver {
    pub fn new(
        clock: Arc<VirtualClock>,
        handler: impl Fn(&TaskRequest, u32) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Self {
        FnResolver {
            clock,
            handler: Box::new(handler),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> Vec<(Timestamp, TaskRequest)> {
        self.calls.lock().expect("calls lock").clone()
    }
}

#[async_trait::async_trait]
impl ResourceResolver for FnResolver {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        let n = {
            let mut calls = self.calls.lock().expect("calls lock");
            calls.push((self.clock.now(), request.clone()));
            u32::try_from(calls.len()).unwrap_or(u32::MAX) - 1
        };
        (self.handler)(&request, n)
    }
}

/// Runs `def` on `input` to completion (or parking) under a virtual clock at [`t0`].
pub async fn run_with(
    def: Value,
    input: Value,
    handler: impl Fn(&TaskRequest, u32) -> Result<Value, TaskFailure> + Send + Sync + 'static,
) -> (Execution, Arc<VirtualClock>, FnResolver) {
    let clock = Arc::new(VirtualClock::new(t0()));
    let resolver = FnResolver::new(clock.clone(), handler);
    let m = machine(def);
    let mut exec = Execution::start(&m, input, StartOptions::default(), clock.as_ref());
    exec.run(&resolver, clock.as_ref()).await;
    (exec, clock, resolver)
}

/// Runs a definition without tasks.
pub async fn run(def: Value, input: Value) -> Execution {
    run_with(def, input, |r, _| {
        Err(TaskFailure::new(
            "Test.Unexpected",
            format!("unexpected task {}", r.state_name),
        ))
    })
    .await
    .0
}

pub fn assert_succeeded(exec: &Execution) -> Value {
    assert_eq!(
        exec.status(),
        ExecutionStatus::Succeeded,
        "failure: {:?}",
        exec.failure()
    );
    exec.output().cloned().unwrap_or(Value::Null)
}

pub fn assert_failed(exec: &Execution) -> (String, String) {
    assert_eq!(
        exec.status(),
        ExecutionStatus::Failed,
        "output: {:?}",
        exec.output()
    );
    let f = exec.failure().cloned().expect("a failure");
    (f.error.unwrap_or_default(), f.cause.unwrap_or_default())
}

pub fn event_types(exec: &Execution) -> Vec<String> {
    exec.history()
        .iter()
        .map(|e| e.event_type.clone())
        .collect()
}

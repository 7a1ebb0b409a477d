//! Conformance runner: reads `{"definition", "input", "mocks"}` on stdin, runs the execution
//! under a virtual clock with the mocks as Lambda results, prints
//! `{"status", "output" | "error", "cause", "states_entered"}` on stdout.

use asl::{Execution, MockResolver, Outcome, StartOptions, StateMachine, VirtualClock};
use serde_json::{Map, Value, json};
use std::io::Read;

fn fail(error: &str, cause: String) -> Value {
    json!({"status": "FAILED", "error": error, "cause": cause, "states_entered": []})
}

async fn run(request: Value) -> Value {
    let definition = request.get("definition").cloned().unwrap_or(Value::Null);
    let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
    let mocks = request.get("mocks").cloned().unwrap_or(Value::Null);
    let machine = match StateMachine::from_value(definition) {
        Ok(m) => m,
        Err(e) => return fail("States.InvalidDefinition", e.to_string()),
    };
    let resolver = match MockResolver::from_json(&mocks) {
        Ok(r) => r,
        Err(e) => return fail("States.InvalidMocks", e),
    };
    let clock = VirtualClock::starting_now();
    let mut execution = Execution::start(&machine, input, StartOptions::default(), &clock);
    execution.run(&resolver, &clock).await;
    let mut out = Map::new();
    out.insert("status".into(), Value::from(execution.status().as_str()));
    match execution.outcome() {
        Outcome::Succeeded(v) => {
            out.insert("output".into(), v);
        }
        Outcome::Failed(f) | Outcome::TimedOut(f) | Outcome::Aborted(f) => {
            out.insert(
                "error".into(),
                f.error.map(Value::from).unwrap_or(Value::Null),
            );
            out.insert(
                "cause".into(),
                f.cause.map(Value::from).unwrap_or(Value::Null),
            );
        }
        Outcome::Running => {
            out.insert("error".into(), Value::from("Local.ExecutionParked"));
            out.insert(
                "cause".into(),
                Value::from("The execution is waiting for a task token callback or a timer."),
            );
        }
    }
    out.insert("states_entered".into(), json!(execution.states_entered()));
    Value::Object(out)
}

fn main() {
    let mut text = String::new();
    let result = match std::io::stdin().read_to_string(&mut text) {
        Err(e) => fail("Local.InvalidRequest", e.to_string()),
        Ok(_) => match serde_json::from_str::<Value>(&text) {
            Err(e) => fail("Local.InvalidRequest", e.to_string()),
            Ok(request) => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(request)),
                Err(e) => fail("Local.Runtime", e.to_string()),
            },
        },
    };
    println!("{result}");
}

//! Interpreter speed: the common refund path with stub tasks, executions per second on our
//! interpreter and on aws-local-stepfunctions (Node) with the same definition and stubs.

use crate::paths::{PathSpec, input, node_stubs, run_path};
use asl::{HistoryDetail, StateMachine};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub const NODE_PACKAGE: &str = "aws-local-stepfunctions@3.0.0";

/// The allocator of the whole driver (this is the binary's only `#[global_allocator]`): the
/// interpreter allocates many small, short-lived JSON values (maps, keys, strings) per state,
/// and glibc's malloc/free took about half of part 4's samples; mimalloc's thread-local free
/// lists serve them much faster. The local stack binary (`aftersales-local`), which runs the
/// same interpreter, uses it too. Parts 1, 2 and 5 measure other processes and are not affected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Our interpreter: `runs` executions after a warm-up, full history (as the local stack keeps).
pub async fn ours(machine: &StateMachine, spec: &PathSpec, runs: u64) -> Result<f64, String> {
    ours_with(machine, spec, runs, HistoryDetail::Full).await
}

/// Our interpreter with the history kept as `history` says: executions per second.
pub async fn ours_with(
    machine: &StateMachine,
    spec: &PathSpec,
    runs: u64,
    history: HistoryDetail,
) -> Result<f64, String> {
    for _ in 0..runs.min(50) {
        run_path(machine, spec, history).await?;
    }
    let start = Instant::now();
    for _ in 0..runs {
        run_path(machine, spec, history).await?;
    }
    Ok(runs as f64 / start.elapsed().as_secs_f64())
}

/// The definition as given to aws-local-stepfunctions: identical except that each
/// `TimeoutSecondsPath` is replaced by its value for this input as `TimeoutSeconds`
/// (aws-local-stepfunctions 3.0.0 evaluates the path against the state's `Parameters` output,
/// not its input as Step Functions does, and fails).
pub fn node_definition(definition: &Value) -> Value {
    let mut def = definition.clone();
    let input = input();
    if let Some(states) = def["States"].as_object_mut() {
        for state in states.values_mut() {
            let Some(obj) = state.as_object_mut() else {
                continue;
            };
            if let Some(Value::String(path)) = obj.remove("TimeoutSecondsPath") {
                let mut v = &input;
                for key in path.trim_start_matches("$.").split('.') {
                    v = &v[key];
                }
                obj.insert("TimeoutSeconds".into(), v.clone());
            }
        }
    }
    def
}

/// aws-local-stepfunctions through `node local/bench/js/bench.mjs`.
pub fn node(
    root: &Path,
    work: &Path,
    definition: &Value,
    spec: &PathSpec,
    runs: u64,
) -> Result<f64, String> {
    let module_dir = root.join(".tools").join("aws-local-stepfunctions");
    let write = |name: &str, v: &Value| -> Result<std::path::PathBuf, String> {
        let p = work.join(name);
        std::fs::write(&p, v.to_string()).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    let def = write("node-definition.json", &node_definition(definition))?;
    let stubs = write("node-stubs.json", &node_stubs(definition, spec))?;
    let inp = write("node-input.json", &input())?;
    let out = Command::new("node")
        .arg(root.join("local/bench/js/bench.mjs"))
        .arg(&module_dir)
        .arg(def)
        .arg(stubs)
        .arg(inp)
        .arg(runs.to_string())
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "node bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(6)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("node bench output: {e}"))?;
    let seconds = v["seconds"].as_f64().ok_or("node bench: no seconds")?;
    // Same route as ours: the output must carry the refund and the feedback.
    if v["output"]["refund"].is_null() || v["output"]["feedback"].is_null() {
        return Err(format!("node bench took another path: {}", v["output"]));
    }
    Ok(runs as f64 / seconds)
}

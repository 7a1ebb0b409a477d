//! Engine benchmark (no harness): the common refund path of `workflows/after-sales.asl.json`
//! (the same stubs as local/bench's part 4: each Lambda task answers a fixed payload, each wait
//! for a person is answered at once through its task token), full history, virtual clock.
//! Prints executions per second; asserts only that every run takes the refund path.
//!
//! Run: `cargo bench -p asl --bench refund_path [-- RUNS]`

use asl::{
    Execution, ExecutionStatus, HistoryDetail, IntegrationPattern, ResourceResolver, StartOptions,
    StateMachine, TaskFailure, TaskRequest, VirtualClock,
};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The system allocator, counting allocations (a figure that does not vary with the load of
/// the machine, unlike the timings).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TICKET: &str = "tkt_01JDBENCH00000000000000000";
const DAY: i64 = 24 * 3600;

fn input() -> Value {
    json!({"ticket_id": TICKET, "deadlines": {
        "evidence": {"reminder": DAY, "remaining": 2 * DAY},
        "decision": {"reminder": 2 * DAY, "remaining": 3 * DAY, "default_action": "accept_top_option"},
        "return_parcel": {"reminder": 7 * DAY, "remaining": 7 * DAY},
        "agent_review": {"sla": DAY, "supervisor_sla": DAY},
        "survey": {"delay": DAY, "reminder": 3 * DAY, "remaining": 4 * DAY}}})
}

struct Stubs {
    payloads: Vec<(&'static str, Value)>,
    default: Value,
}

#[async_trait::async_trait]
impl ResourceResolver for Stubs {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        if request.pattern == IntegrationPattern::WaitForTaskToken {
            return Ok(Value::Null);
        }
        Ok(self
            .payloads
            .iter()
            .find(|(n, _)| *n == request.state_name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| self.default.clone()))
    }
}

fn answer(state: &str) -> Value {
    match state {
        "AwaitCustomerDecision" => {
            json!({"kind": "decision", "outcome": "accepted", "option_id": "opt-1", "resolution": "refund"})
        }
        "Survey" => json!({"kind": "survey", "score": 5}),
        other => panic!("nobody answers {other}"),
    }
}

fn definition() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workflows/after-sales.asl.json"
    );
    let mut text = std::fs::read_to_string(path).expect("workflows/after-sales.asl.json");
    for (name, function) in [
        ("DiagnoseFunctionArn", "diagnose"),
        ("ProposeFunctionArn", "propose"),
        ("ExecuteRefundFunctionArn", "execute-refund"),
        ("NotifyFunctionArn", "notify"),
        ("SurveyFunctionArn", "survey"),
    ] {
        text = text.replace(
            &format!("${{{name}}}"),
            &format!("arn:aws:lambda:us-east-1:123456789012:function:aftersales-{function}"),
        );
    }
    text
}

async fn run_once(machine: &StateMachine, stubs: &Stubs) -> u64 {
    let clock = VirtualClock::starting_now();
    let options = StartOptions {
        name: Some(TICKET.to_owned()),
        history: HistoryDetail::Full,
        ..StartOptions::default()
    };
    let mut exec = Execution::start(machine, input(), options, &clock);
    loop {
        let status = exec.advance(stubs, &clock).await;
        if status != ExecutionStatus::Running {
            break;
        }
        let tokens = exec.pending_task_tokens();
        if let Some(token) = tokens.first() {
            let state = exec.states_entered().last().cloned().unwrap_or_default();
            exec.send_task_success(token, answer(&state))
                .expect("send_task_success");
            continue;
        }
        match exec.next_wakeup() {
            Some(t) => clock.set(t),
            None => panic!("stuck in {:?}", exec.states_entered().last()),
        }
    }
    assert_eq!(
        exec.status(),
        ExecutionStatus::Succeeded,
        "{:?}",
        exec.failure()
    );
    exec.state_transitions()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    let machine = StateMachine::from_json_str(&definition()).expect("definition");
    let refund = json!({"ticket_id": TICKET, "refund_id": "re_1", "amount": 29900, "currency": "CNY", "replayed": false});
    let stubs = Stubs {
        payloads: vec![
            (
                "Diagnose",
                json!({"ticket_id": TICKET, "route": "propose", "department": "quality"}),
            ),
            (
                "Propose",
                json!({"ticket_id": TICKET, "route": "await_decision", "top_option": "opt-1", "top_kind": "refund"}),
            ),
            ("ExecuteRefund", refund),
            (
                "SendFeedback",
                json!({"ticket_id": TICKET, "department": "quality", "low_score": false}),
            ),
        ],
        default: json!({"ticket_id": TICKET, "sent": 1}),
    };
    let transitions = run_once(&machine, &stubs).await;
    assert_eq!(transitions, 11, "the refund path enters 11 states");
    for _ in 0..runs.min(500) {
        run_once(&machine, &stubs).await;
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..runs {
        run_once(&machine, &stubs).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    println!(
        "refund path, full history: {:.0} executions/s ({runs} runs, {:.2} µs each, {:.0} allocations each, driver included)",
        runs as f64 / secs,
        secs * 1e6 / runs as f64,
        allocations as f64 / runs as f64
    );
}

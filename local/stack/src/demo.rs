//! `aftersales-local demo`: starts the stack on a free port (the same HTTP API, workflow and
//! step handlers as `serve`), submits the sample requests bundled in `local/stack/demo/`, answers
//! for the customer, the warehouse and the agent through the signed HTTP API, and prints where
//! each ticket went.
//!
//! Waits run `time_scale` times faster, and the survey follows a resolution after one minute
//! instead of a day, so every path finishes in seconds while waits for people keep minutes of
//! slack.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use aftersales_domain::Policy;
use aftersales_domain::lifecycle::TicketEvent;
use aftersales_domain::policy::PolicyDuration;
use aftersales_service::signature::{WebhookSecret, sign};
use asl::{Execution, ExecutionStatus};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use crate::serve::{self, Settings, Stack};
use crate::store::Reader;

/// The bundled samples (`local/stack/demo/samples.json`).
pub const SAMPLES: &str = include_str!("../demo/samples.json");

/// The demo's default time scale: a day of workflow time passes in under two minutes.
pub const DEFAULT_TIME_SCALE: u32 = 1000;

/// How long one sample may take before the demo gives up on it.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(25);

/// One sample: a request, the answers people give, and where it must end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub name: String,
    pub title: String,
    /// Deliver the request twice, as a storefront retry would (the second answer is 200).
    #[serde(default)]
    pub repeat_delivery: bool,
    pub request: Value,
    pub script: Vec<Step>,
    pub expect: Expect,
}

/// An answer given once the ticket waits for `when`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The ticket's `waiting_for`: evidence, decision, return_parcel, agent, survey.
    pub when: String,
    /// Who answers: customer, warehouse or agent (all through the same signed API).
    pub by: String,
    /// A decision for the proposal's first option of this kind.
    #[serde(default)]
    pub choose: Option<String>,
    /// The response body, as `POST /v1/tickets/{id}/responses` takes it.
    #[serde(default)]
    pub answer: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: String,
    /// `resolved: <kind>` or `rejected`.
    pub outcome: String,
}

pub fn samples() -> Result<Vec<Sample>, String> {
    serde_json::from_str(SAMPLES).map_err(|e| format!("the bundled samples are invalid: {e}"))
}

/// The default policy, with the survey sent one minute after the resolution.
pub fn demo_policy() -> Policy {
    let mut policy = Policy::default_policy();
    if let Some(minute) = PolicyDuration::from_secs(60) {
        policy.survey.delay_after_resolution = minute;
    }
    policy
}

/// The demo's signed HTTP client.
struct Client {
    http: reqwest::Client,
    url: String,
    secret: WebhookSecret,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        let signature = sign(&self.secret, Timestamp::now(), &body);
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("x-aftersales-signature", signature);
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.send(reqwest::Method::POST, path, bytes).await
    }

    async fn ticket(&self, id: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::GET,
            &format!("/v1/tickets/{id}"),
            Vec::new(),
        )
        .await
    }
}

/// The request with fresh ids (`<id>-<run>`) and its times moved so it was submitted now.
fn rebase(request: &Value, run: &str, now: Timestamp) -> Value {
    let mut request = request.clone();
    let submitted: Option<Timestamp> = request["submitted_at"]
        .as_str()
        .and_then(|t| t.parse().ok());
    let shift = submitted.map_or(SignedDuration::ZERO, |s| now.duration_since(s));
    let moved = |value: &mut Value| {
        if let Some(at) = value.as_str().and_then(|t| t.parse::<Timestamp>().ok())
            && let Ok(at) = at.checked_add(shift)
        {
            *value = Value::String(at.to_string());
        }
    };
    moved(&mut request["submitted_at"]);
    moved(&mut request["order"]["placed_at"]);
    moved(&mut request["order"]["delivered_at"]);
    for path in [["request_id", ""], ["customer", "id"], ["order", "id"]] {
        let id = match path {
            [field, ""] => &mut request[field],
            [outer, inner] => &mut request[outer][inner],
        };
        if let Some(text) = id.as_str() {
            *id = Value::String(format!("{text}-{run}"));
        }
    }
    request
}

/// What happened to one sample.
#[derive(Debug, Default)]
struct Outcome {
    ticket: String,
    deliveries: Vec<u16>,
    answers: Vec<String>,
    error: Option<String>,
}

async fn play(client: &Client, sample: &Sample, run: &str, reader: &Reader) -> Outcome {
    let mut outcome = Outcome::default();
    let request = rebase(&sample.request, run, Timestamp::now());
    let times = if sample.repeat_delivery { 2 } else { 1 };
    for _ in 0..times {
        let (status, answer) = client.post("/v1/requests", &request).await;
        outcome.deliveries.push(status);
        match answer["ticket_id"].as_str() {
            Some(id) if outcome.ticket.is_empty() || outcome.ticket == id => {
                outcome.ticket = id.to_owned();
            }
            _ => {
                outcome.error = Some(format!("request answered {status}: {answer}"));
                return outcome;
            }
        }
    }
    let started = tokio::time::Instant::now();
    for step in &sample.script {
        let shown = loop {
            let (status, shown) = client.ticket(&outcome.ticket).await;
            if status == 200 && shown["waiting_for"].as_str() == Some(step.when.as_str()) {
                break shown;
            }
            if started.elapsed() > SAMPLE_TIMEOUT || run_finished(reader, &outcome.ticket) {
                outcome.error = Some(format!(
                    "never waited for {} (status {}, waiting for {})",
                    step.when, shown["status"], shown["waiting_for"]
                ));
                return outcome;
            }
            tokio::time::sleep(POLL).await;
        };
        let (body, label) = match (&step.choose, &step.answer) {
            (Some(kind), _) => {
                let option = shown["proposal"]["options"]
                    .as_array()
                    .and_then(|options| options.iter().find(|o| o["kind"] == kind.as_str()));
                let Some(id) = option.and_then(|o| o["id"].as_str()) else {
                    outcome.error = Some(format!(
                        "no {kind} option in the proposal: {}",
                        shown["proposal"]
                    ));
                    return outcome;
                };
                (
                    serde_json::json!({"kind": "decision", "option_id": id}),
                    format!("{} chose {kind}", step.by),
                )
            }
            (None, Some(answer)) => (answer.clone(), format!("{} {}", step.by, describe(answer))),
            (None, None) => {
                outcome.error = Some(format!("step {} has neither choose nor answer", step.when));
                return outcome;
            }
        };
        let (status, answer) = client
            .post(&format!("/v1/tickets/{}/responses", outcome.ticket), &body)
            .await;
        if status != 202 {
            outcome.error = Some(format!("{label}: answered {status} {answer}"));
            return outcome;
        }
        outcome.answers.push(label);
    }
    while !run_finished(reader, &outcome.ticket) {
        if started.elapsed() > SAMPLE_TIMEOUT {
            outcome.error = Some("the run did not finish".to_owned());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    outcome
}

/// A short description of a response body for the summary.
fn describe(answer: &Value) -> String {
    match answer["kind"].as_str() {
        Some("survey") => format!("survey {}", answer["score"]),
        Some("evidence") => format!(
            "sent evidence ({})",
            answer["evidence"].as_array().map_or(0, Vec::len)
        ),
        Some("return_received") => {
            let lines: Vec<String> = answer["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    format!(
                        "{}×{} {}",
                        l["line_id"].as_str().unwrap_or("?"),
                        l["quantity"],
                        l["disposition"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!("received the parcel ({})", lines.join(", "))
        }
        Some("agent_decision") if answer["reject"].is_object() => "rejected".to_owned(),
        Some("agent_decision") => format!(
            "granted {}",
            answer["option"]["kind"].as_str().unwrap_or("an option")
        ),
        Some("decision") => "decided".to_owned(),
        other => other.unwrap_or("answered").to_owned(),
    }
}

fn execution(reader: &Reader, ticket: &str) -> Option<Execution> {
    reader.run(ticket).ok()?
}

fn run_finished(reader: &Reader, ticket: &str) -> bool {
    execution(reader, ticket).is_some_and(|e| e.status() != ExecutionStatus::Running)
}

/// The states a run went through, leaving out Choice and Pass states.
fn path(execution: &Execution) -> Vec<String> {
    execution
        .history()
        .iter()
        .filter(|e| {
            e.event_type.ends_with("StateEntered")
                && !e.event_type.starts_with("Choice")
                && !e.event_type.starts_with("Pass")
        })
        .filter_map(|e| e.state_name().map(str::to_owned))
        .collect()
}

/// `text` wrapped at `width` columns, continuation lines indented by `indent`.
fn wrap(text: &str, separator: &str, width: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut column = indent;
    for (i, part) in text.split(separator).enumerate() {
        let piece = if i == 0 {
            part.to_owned()
        } else {
            format!("{separator}{part}")
        };
        if column + piece.chars().count() > width && i > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            let trimmed = piece.trim_start();
            column = indent + trimmed.chars().count();
            out.push_str(trimmed);
        } else {
            column += piece.chars().count();
            out.push_str(&piece);
        }
    }
    out
}

/// Where the ticket ended: the last `resolved` or `rejected` in its timeline.
fn final_outcome(reader: &Reader, ticket: &str) -> String {
    let trail = reader.audit_trail(ticket).unwrap_or_default();
    trail
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            TicketEvent::Resolved { kind } => Some(format!("resolved: {kind}")),
            TicketEvent::Rejected { .. } => Some("rejected".to_owned()),
            TicketEvent::ClosedUnanswered { .. } => Some("closed unanswered".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "-".to_owned())
}

const DEPARTMENTS: [&str; 4] = ["quality", "logistics", "warehouse", "service"];

/// Runs every sample and returns the summary; `Err` names what failed (after the summary).
pub async fn run(data_dir: PathBuf, time_scale: u32) -> Result<String, String> {
    let samples = samples()?;
    let stack = serve::start(Settings {
        port: 0,
        data_dir: data_dir.clone(),
        time_scale,
        policy: demo_policy(),
        workflow: serve::default_workflow(),
    })
    .await?;
    let played = play_all(&stack, &samples).await;
    let reader = stack.store.reader();
    let summary = summarise(&reader, &samples, &played, &data_dir, time_scale);
    drop(reader);
    stack.stop().await?;
    summary
}

async fn play_all(stack: &Stack, samples: &[Sample]) -> Vec<Outcome> {
    let Some(secret) = stack.secrets.first().cloned() else {
        return Vec::new();
    };
    let client = std::sync::Arc::new(Client {
        http: aftersales_service::runtime::tls::client_builder()
            .build()
            .expect("a client with default settings and the system roots builds"),
        url: stack.url(),
        secret,
    });
    let run = format!("{:x}", Timestamp::now().as_millisecond());
    let tasks: Vec<_> = samples
        .iter()
        .cloned()
        .map(|sample| {
            let client = client.clone();
            let run = run.clone();
            let reader = stack.store.reader();
            tokio::spawn(async move { play(&client, &sample, &run, &reader).await })
        })
        .collect();
    // Progress on stderr as each sample finishes (stdout stays the summary).
    let total = samples.len();
    eprintln!("demo: playing {total} sample requests through the HTTP API...");
    let mut played = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.unwrap_or_else(|e| Outcome {
            error: Some(format!("the sample's task failed: {e}")),
            ..Outcome::default()
        });
        let state = if outcome.error.is_some() {
            "did not finish"
        } else {
            "finished"
        };
        eprintln!("  [{}/{total}] {}: {state}", n + 1, samples[n].title);
        played.push(outcome);
    }
    played
}

fn summarise(
    reader: &Reader,
    samples: &[Sample],
    played: &[Outcome],
    data_dir: &std::path::Path,
    time_scale: u32,
) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "aftersales-local demo: {} sample requests through the HTTP API and the workflow \
         (waits x{time_scale}, survey 1 min after resolution)\n",
        samples.len()
    );
    let outbox = reader.outbox().map_err(|e| e.to_string())?;
    let queues: Vec<(&str, Vec<crate::store::Record>)> = DEPARTMENTS
        .iter()
        .map(|d| Ok((*d, reader.queue(d).map_err(|e| e.to_string())?)))
        .collect::<Result<_, String>>()?;
    let mut feedback_total: BTreeMap<&str, usize> = BTreeMap::new();
    let mut passed = 0;
    let mut failures = Vec::new();
    for (n, (sample, outcome)) in samples.iter().zip(played).enumerate() {
        let ticket = reader.ticket(&outcome.ticket).ok().flatten();
        let status = ticket
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.status.to_string());
        let ending = final_outcome(reader, &outcome.ticket);
        let ok = outcome.error.is_none()
            && status == sample.expect.status
            && ending == sample.expect.outcome;
        if ok {
            passed += 1;
        } else {
            failures.push(sample.name.clone());
        }
        let _ = writeln!(out, "{}. {}", n + 1, sample.title);
        let deliveries: Vec<String> = outcome.deliveries.iter().map(u16::to_string).collect();
        let _ = writeln!(
            out,
            "   ticket     {}  HTTP {}",
            if outcome.ticket.is_empty() {
                "-"
            } else {
                &outcome.ticket
            },
            deliveries.join(", then ")
        );
        let run = execution(reader, &outcome.ticket);
        let steps = run.as_ref().map(path).unwrap_or_default().join(" → ");
        let run_status = run.as_ref().map_or("-", |e| e.status().as_str());
        let _ = writeln!(
            out,
            "   path       {}  [{run_status}]",
            wrap(&steps, " → ", 100, 14)
        );
        if !outcome.answers.is_empty() {
            let _ = writeln!(out, "   answers    {}", outcome.answers.join("; "));
        }
        let mark = if ok { "ok" } else { "UNEXPECTED" };
        let _ = writeln!(
            out,
            "   result     {status}, {ending}  (expected {}, {}: {mark})",
            sample.expect.status, sample.expect.outcome
        );
        if let Some(ticket) = &ticket {
            let refunds: Vec<String> = ticket
                .refunds
                .iter()
                .map(|r| format!("{} ({})", r.amount, r.provider_refund_id))
                .collect();
            if !refunds.is_empty() {
                let _ = writeln!(out, "   refund     {}", refunds.join(", "));
            }
        }
        let notes: Vec<String> = outbox
            .iter()
            .filter(|r| r.body["ticket_id"] == outcome.ticket.as_str())
            .filter_map(|r| r.body["milestone"].as_str().map(str::to_owned))
            .collect();
        let _ = writeln!(
            out,
            "   notified   {}",
            wrap(&notes.join(", "), ", ", 100, 14)
        );
        let feedback: Vec<String> = queues
            .iter()
            .filter_map(|(department, records)| {
                let count = records
                    .iter()
                    .filter(|r| r.body["ticket_id"] == outcome.ticket.as_str())
                    .count();
                (count > 0).then(|| {
                    *feedback_total.entry(department).or_default() += count;
                    format!("{department} ({count})")
                })
            })
            .collect();
        if !feedback.is_empty() {
            let _ = writeln!(out, "   feedback   {}", feedback.join(", "));
        }
        if let Some(error) = &outcome.error {
            let _ = writeln!(out, "   error      {error}");
        }
        out.push('\n');
    }
    let totals: Vec<String> = DEPARTMENTS
        .iter()
        .map(|d| format!("{d} {}", feedback_total.get(d).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(
        out,
        "Feedback messages per department: {}",
        totals.join(", ")
    );
    let _ = writeln!(
        out,
        "{passed}/{} tickets reached their expected status.",
        samples.len()
    );
    let dir = data_dir.display();
    let _ = writeln!(
        out,
        "\nEverything is in {dir}: `aftersales-local runs list --data-dir {dir}`, \
         `runs show <ticket-id> --data-dir {dir}`, `outbox show`, `queues show <department>`."
    );
    if failures.is_empty() {
        Ok(out)
    } else {
        print!("{out}");
        Err(format!(
            "{} sample(s) did not end as expected: {}",
            failures.len(),
            failures.join(", ")
        ))
    }
}

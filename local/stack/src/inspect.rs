//! What an operator reads: runs (as the Step Functions console shows them), the ticket's audit
//! timeline, the department queues and the outbox. Reads the store read-only, so it works
//! beside a running `serve`.

use std::fmt::Write as _;

use asl::{Execution, HistoryEvent};
use serde_json::Value;

use crate::store::Reader;

/// Keys whose values are personal data or free text: shown as `***`.
const MASKED_KEYS: &[&str] = &[
    "email",
    "phone",
    "name",
    "description",
    "comment",
    "note",
    "reason",
    "address",
    "recipient",
    "body",
    "subject",
];

/// `value` with personal data replaced by `***`.
pub fn mask(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = if MASKED_KEYS.contains(&k.to_lowercase().as_str()) && !v.is_null()
                    {
                        Value::String("***".to_owned())
                    } else {
                        mask(v)
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        Value::String(text) if looks_like_json(text) => match serde_json::from_str(text) {
            Ok(inner) => Value::String(mask(&inner).to_string()),
            Err(_) => value.clone(),
        },
        other => other.clone(),
    }
}

fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

fn current_state(execution: &Execution) -> String {
    execution
        .history()
        .iter()
        .rev()
        .find(|e| e.event_type.ends_with("StateEntered"))
        .and_then(HistoryEvent::state_name)
        .unwrap_or("-")
        .to_owned()
}

/// A run's status and current state, as `runs list` shows them: "STATUS\tSTATE".
pub fn run_summary(execution: &Execution) -> String {
    format!(
        "{}\t{}",
        execution.status().as_str(),
        current_state(execution)
    )
}

/// `runs count`: how many runs are in each status and current state, then the total.
pub fn runs_count(reader: &Reader) -> Result<String, String> {
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let mut total = 0u64;
    for (ticket, summary) in reader.run_summaries().map_err(|e| e.to_string())? {
        let summary = match summary {
            Some(summary) => summary,
            None => {
                let execution = reader
                    .run(&ticket)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("the run of ticket {ticket} went while counting"))?;
                run_summary(&execution)
            }
        };
        let (status, state) = summary.split_once('\t').unwrap_or((summary.as_str(), "-"));
        *counts
            .entry((status.to_owned(), state.to_owned()))
            .or_default() += 1;
        total += 1;
    }
    let mut out = String::new();
    let _ = writeln!(out, "{:<10} {:<28} RUNS", "STATUS", "CURRENT STATE");
    for ((status, state), n) in counts {
        let _ = writeln!(out, "{status:<10} {state:<28} {n}");
    }
    let _ = writeln!(out, "total {total}");
    Ok(out)
}

fn updated(execution: &Execution) -> String {
    execution
        .history()
        .last()
        .map_or_else(|| "-".to_owned(), |e| e.timestamp.to_string())
}

/// `runs list`: one line per run.
pub fn runs_list(reader: &Reader) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<10} {:<28} {:<30} UPDATED",
        "TICKET", "STATUS", "CURRENT STATE", "STARTED"
    );
    for (ticket, execution) in reader.all_runs().map_err(|e| e.to_string())? {
        let _ = writeln!(
            out,
            "{:<32} {:<10} {:<28} {:<30} {}",
            ticket,
            execution.status().as_str(),
            current_state(&execution),
            execution.info().start_time.to_string(),
            updated(&execution)
        );
    }
    Ok(out)
}

/// `runs show`: the run's status, states, errors and waiting task, then the audit timeline.
pub fn runs_show(reader: &Reader, ticket: &str) -> Result<String, String> {
    let execution = reader
        .run(ticket)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no run for ticket {ticket}"))?;
    let mut out = String::new();
    let _ = writeln!(out, "ticket:     {ticket}");
    let _ = writeln!(out, "execution:  {}", execution.info().execution_arn);
    let _ = writeln!(out, "status:     {}", execution.status().as_str());
    let _ = writeln!(out, "started:    {}", execution.info().start_time);
    let _ = writeln!(out, "input:      {}", mask(&execution.info().input));
    if let Some(output) = execution.output() {
        let _ = writeln!(out, "output:     {}", mask(output));
    }
    if let Some(failure) = execution.failure() {
        let _ = writeln!(
            out,
            "error:      {} {}",
            failure.error.as_deref().unwrap_or("-"),
            failure.cause.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "transitions: {}", execution.state_transitions());
    let _ = writeln!(out, "\nhistory:");
    let mut retries = 0;
    let mut scheduled_in: Option<String> = None;
    for event in execution.history() {
        let kind = event.event_type.as_str();
        if kind.ends_with("StateEntered") {
            scheduled_in = event.state_name().map(str::to_owned);
        }
        if kind == "TaskScheduled" || kind == "LambdaFunctionScheduled" {
            if scheduled_in.is_none() {
                retries += 1;
            }
            scheduled_in = None;
        }
        let detail = event.detail().map(mask);
        let name = event.state_name().unwrap_or("");
        let shown = detail
            .as_ref()
            .map(|d| {
                let mut d = d.clone();
                if let Some(map) = d.as_object_mut() {
                    map.remove("name");
                }
                d
            })
            .filter(|d| d.as_object().is_some_and(|m| !m.is_empty()))
            .map(|d| d.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:>4} {} {:<28} {:<24} {}",
            event.id, event.timestamp, kind, name, shown
        );
    }
    let _ = writeln!(out, "retries:    {retries}");
    let waiting = execution.pending_task_tokens();
    if !waiting.is_empty() {
        let _ = writeln!(
            out,
            "waiting:    task in state {} for a callback ({} token{})",
            current_state(&execution),
            waiting.len(),
            if waiting.len() == 1 { "" } else { "s" }
        );
    } else if let Some(at) = execution.next_wakeup() {
        let _ = writeln!(out, "waiting:    until {at}");
    }
    let _ = writeln!(out, "\naudit timeline:");
    for event in reader.audit_trail(ticket).map_err(|e| e.to_string())? {
        let value = serde_json::to_value(&event).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "  {}", mask(&value));
    }
    Ok(out)
}

/// `queues show <department>`.
pub fn queue(reader: &Reader, department: &str) -> Result<String, String> {
    let mut out = String::new();
    for record in reader.queue(department).map_err(|e| e.to_string())? {
        let _ = writeln!(out, "{} {} {}", record.seq, record.at, record.body);
    }
    if out.is_empty() {
        let _ = writeln!(out, "queue {department} is empty");
    }
    Ok(out)
}

/// `outbox show`.
pub fn outbox(reader: &Reader) -> Result<String, String> {
    let mut out = String::new();
    for record in reader.outbox().map_err(|e| e.to_string())? {
        let _ = writeln!(out, "{} {} {}", record.seq, record.at, record.body);
    }
    if out.is_empty() {
        let _ = writeln!(out, "the outbox is empty");
    }
    Ok(out)
}

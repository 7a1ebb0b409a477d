//! `aftersales-local demo`: the bundled sample requests through the same handlers and workflow
//! as `serve`, then a summary of where each ticket and run ended up.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aftersales_domain::TicketId;
use aftersales_service::clock::SystemClock;
use aftersales_service::handlers::accept;
use aftersales_service::signature::sign;
use aftersales_service::store::TicketStore;
use asl::{Execution, ExecutionStatus};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::data_dir;
use crate::runner::{LocalWorkflow, Runner, load_machine};
use crate::serve::{default_workflow, load_policy};
use crate::store::LocalStore;

/// (what the sample shows, request id, problem kind, days since delivery, unit price, evidence).
const SAMPLES: &[(&str, &str, &str, i64, i64, bool)] = &[
    (
        "damaged in transit, photo attached",
        "demo-damaged",
        "damaged_in_transit",
        2,
        29900,
        true,
    ),
    (
        "quality defect without evidence",
        "demo-defect",
        "quality_defect",
        3,
        29900,
        false,
    ),
    (
        "changed mind after the return window",
        "demo-late",
        "changed_mind",
        60,
        29900,
        false,
    ),
    (
        "high-value claim for a person to review",
        "demo-review",
        "quality_defect",
        2,
        990000,
        true,
    ),
    (
        "storefront retry of the first request",
        "demo-damaged",
        "damaged_in_transit",
        2,
        29900,
        true,
    ),
];

fn sample(
    request_id: &str,
    kind: &str,
    days: i64,
    unit_price: i64,
    evidence: bool,
    now: Timestamp,
) -> Value {
    let ago = |d: i64| (now - SignedDuration::from_hours(24 * d)).to_string();
    let evidence: Vec<Value> = if evidence {
        vec![json!({"kind": "photo", "url": "https://example.com/demo/photo.jpg"})]
    } else {
        vec![]
    };
    json!({
        "request_id": request_id, "channel": "web", "submitted_at": ago(0).to_string(),
        "customer": {"id": "C-DEMO", "name": "Demo Customer", "email": "demo@example.com",
                     "locale": "en"},
        "order": {"id": format!("ORD-{request_id}"), "currency": "CNY", "placed_at": ago(days + 3),
                  "delivered_at": ago(days), "shipping_paid": 1000,
                  "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                             "category": "electronics", "quantity": 1, "unit_price": unit_price,
                             "final_sale": false}],
                  "payment": {"provider": "stripe", "reference": "pi_demo",
                              "paid": unit_price + 1000}},
        "problem": {"kind": kind, "description": "demo", "lines": [{"line_id": "L1", "quantity": 1}],
                    "evidence": evidence},
        "expected_resolution": "refund"
    })
}

/// Runs the samples; returns the summary.
pub async fn run(dir: &Path) -> Result<String, String> {
    data_dir::prepare(dir)?;
    let (secrets, _) = data_dir::webhook_secrets(dir)?;
    let secret = secrets.first().cloned().ok_or("no webhook secret")?;
    let policy = Arc::new(load_policy(None)?);
    let store = LocalStore::open(dir).map_err(|e| e.to_string())?;
    let machine = load_machine(&default_workflow())?;
    let runner = Runner::new(store.clone(), Ok(machine), policy.clone(), 1);
    runner.recover().await?;
    let tickets: Arc<dyn TicketStore> = Arc::new(store.clone());
    let deps = accept::Deps {
        store: tickets.clone(),
        workflow: Arc::new(LocalWorkflow(runner)),
        clock: Arc::new(SystemClock),
        policy,
        secrets,
    };

    let now = Timestamp::now();
    let mut answers = Vec::new();
    for (what, request_id, kind, days, price, evidence) in SAMPLES {
        let body = sample(request_id, kind, *days, *price, *evidence, now).to_string();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let signature = sign(&secret, Timestamp::now(), body.as_bytes());
        headers.insert(
            "x-aftersales-signature",
            HeaderValue::from_str(&signature).map_err(|e| e.to_string())?,
        );
        let uri: Uri = accept::ROUTE.parse().map_err(|e| format!("{e}"))?;
        let event = crate::http::event(&Method::POST, &uri, headers, body.as_bytes());
        let answer = accept::handle(event, &deps).await;
        let text = match answer.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => text,
            _ => String::new(),
        };
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        answers.push((*what, answer.status_code, value));
    }

    // Let every run go as far as it can without a person.
    for _ in 0..100 {
        let mut busy = false;
        for (_, json) in store.executions().await.map_err(|e| e.to_string())? {
            let execution = Execution::from_json(&json).map_err(|e| e.to_string())?;
            let parked = !execution.pending_task_tokens().is_empty()
                || execution
                    .next_wakeup()
                    .is_some_and(|t| t > Timestamp::now());
            busy |= execution.status() == ExecutionStatus::Running && !parked;
        }
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<42} {:>4} {:<32} {:<18} {:<10} WAITING FOR",
        "SAMPLE", "HTTP", "TICKET", "TICKET STATUS", "RUN"
    );
    for (what, status, value) in answers {
        let ticket = value["ticket_id"].as_str().unwrap_or("-").to_owned();
        let (ticket_status, waiting) = match TicketId::new(&ticket) {
            Ok(id) => match tickets.get(&id).await.map_err(|e| e.to_string())? {
                Some(t) => (
                    t.status.to_string(),
                    t.waiting_for().map_or("-".to_owned(), |w| {
                        serde_json::to_value(w)
                            .map_or("-".to_owned(), |v| v.as_str().unwrap_or("-").to_owned())
                    }),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            },
            Err(_) => (
                value["error"]["code"].as_str().unwrap_or("-").to_owned(),
                "-".to_owned(),
            ),
        };
        let run = match store.execution(&ticket).await.map_err(|e| e.to_string())? {
            Some(json) => Execution::from_json(&json)
                .map(|e| e.status().as_str().to_owned())
                .unwrap_or_else(|_| "-".to_owned()),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{what:<42} {status:>4} {ticket:<32} {ticket_status:<18} {run:<10} {waiting}"
        );
    }
    let _ = writeln!(
        out,
        "\nData in {}: `aftersales-local runs list --data-dir {0}`, `runs show <ticket>`, `outbox show`.",
        dir.display()
    );
    Ok(out)
}

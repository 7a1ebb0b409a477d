//! Cost per ticket: the interpreter's transitions and invocations per path (stub tasks), the
//! DynamoDB and SQS requests each invocation makes (from the store and adapters in
//! functions/service), priced with public list prices.

use crate::paths::PathRun;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const REGION: &str = "us-east-1";
pub const PRICES_AS_OF: &str = "2026-11-23";
/// The template's `MemorySize` (infra/template.yaml, Globals.Function).
pub const MEMORY_MB: f64 = 128.0;

/// Public list prices (USD), on-demand, no free tier.
pub struct Prices {
    pub per_transition: f64,
    pub per_lambda_request: f64,
    pub per_gb_second_arm64: f64,
    pub per_write_request_unit: f64,
    pub per_read_request_unit: f64,
    pub per_sqs_request: f64,
    pub per_http_api_request: f64,
    pub per_email: f64,
}

pub const PRICES: Prices = Prices {
    per_transition: 0.025 / 1_000.0,
    per_lambda_request: 0.20 / 1_000_000.0,
    per_gb_second_arm64: 0.000_013_333_4,
    per_write_request_unit: 0.625 / 1_000_000.0,
    per_read_request_unit: 0.125 / 1_000_000.0,
    per_sqs_request: 0.40 / 1_000_000.0,
    per_http_api_request: 1.00 / 1_000_000.0,
    per_email: 0.10 / 1_000.0,
};

/// What one invocation of a function uses. Item sizes assumed: the ticket item ≤ 2 KB (2 WRU to
/// write, 1 RRU to read strongly consistent), audit events, claims and ledger entries ≤ 1 KB.
/// A TransactWriteItems costs 2 WRU per KB of each item.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rru: f64,
    pub wru: f64,
    pub sqs_requests: f64,
    /// Customer messages sent (SES email); outside the target's scope, shown apart.
    pub emails: f64,
    /// Billed duration assumed per warm invocation, milliseconds.
    pub billed_ms: f64,
}

/// The per-function model. The step save is `TicketStore::save`: one TransactWriteItems of the
/// ticket (2 KB → 4 WRU) and its audit event (1 KB → 2 WRU) after a consistent GetItem.
pub fn usage(function: &str) -> Usage {
    let step = Usage {
        rru: 1.0,
        wru: 6.0,
        sqs_requests: 0.0,
        emails: 0.0,
        billed_ms: 60.0,
    };
    match function {
        // find_by_request (GetItem, miss) + create: TransactWriteItems of the request claim,
        // the ticket and the first audit event (2 + 4 + 2 WRU); StartExecution is not billed.
        "accept" => Usage {
            rru: 1.0,
            wru: 8.0,
            ..step
        },
        // get + save; SendTaskSuccess is not billed.
        "respond" => step,
        // get + the customer's recent tickets (Query, eventually consistent: 0.5 RRU) + save.
        "diagnose" | "propose" => Usage { rru: 1.5, ..step },
        // get + the audit trail (Query, consistent, idempotency) + save (the milestone's event
        // and the token), one email, then get + trail + save again to record `notification_sent`
        // (with the owed messages' ones, counted apart in OWED_MESSAGE).
        "notify" => Usage {
            rru: 4.0,
            wru: 12.0,
            emails: 1.0,
            ..step
        },
        // get + the ledger entry (GetItem) + the order's committed sum (GetItem) + reserve
        // (TransactWriteItems of intent and sum: 4 WRU) + complete (UpdateItem: 1 WRU) + save;
        // the payment gateway call dominates the duration.
        "execute-refund" => Usage {
            rru: 3.0,
            wru: 11.0,
            billed_ms: 400.0,
            ..step
        },
        // get + save + SendMessageBatch; the department's consumer receives and deletes (2 more).
        "survey" => Usage {
            sqs_requests: 3.0,
            ..step
        },
        _ => step,
    }
}

/// One message a notify invocation sends before its own for what a step without channels did
/// (`notify::owed_messages`): the email, and its `notification_sent` audit event (1 KB, 2 WRU in
/// the transaction) in the one save that records all the messages the invocation sent.
pub const OWED_MESSAGE: Usage = Usage {
    rru: 0.0,
    wru: 2.0,
    sqs_requests: 0.0,
    emails: 1.0,
    billed_ms: 0.0,
};

/// The owed messages of a path: `accept`'s acknowledgement, each refund (execute-refund sends
/// nothing itself) and each parcel the warehouse reports (through `respond`).
pub fn owed_messages(run: &PathRun) -> u64 {
    let entered = |state: &str| run.states.iter().filter(|s| *s == state).count() as u64;
    1 + entered("ExecuteRefund") + entered("InspectReturn")
}

/// One path's bill for one ticket.
#[derive(Debug, Clone, Default)]
pub struct Bill {
    pub transitions: f64,
    pub invocations: f64,
    pub gb_seconds: f64,
    pub rru: f64,
    pub wru: f64,
    pub sqs: f64,
    pub http_requests: f64,
    pub emails: f64,
}

impl Bill {
    pub fn of(run: &PathRun) -> Bill {
        let mut calls: BTreeMap<String, u64> = run.invocations.clone();
        *calls.entry("accept".into()).or_default() += 1;
        *calls.entry("respond".into()).or_default() += run.answers;
        let mut bill = Bill {
            transitions: run.transitions as f64,
            http_requests: 1.0 + run.answers as f64,
            ..Bill::default()
        };
        for (function, n) in calls {
            let n = n as f64;
            let u = usage(&function);
            bill.invocations += n;
            bill.gb_seconds += n * u.billed_ms / 1000.0 * MEMORY_MB / 1024.0;
            bill.rru += n * u.rru;
            bill.wru += n * u.wru;
            bill.sqs += n * u.sqs_requests;
            bill.emails += n * u.emails;
        }
        let owed = owed_messages(run) as f64;
        bill.rru += owed * OWED_MESSAGE.rru;
        bill.wru += owed * OWED_MESSAGE.wru;
        bill.emails += owed * OWED_MESSAGE.emails;
        bill
    }

    /// USD per ticket by component: (transitions, lambda, dynamodb, sqs, api).
    pub fn usd(&self) -> [f64; 5] {
        let p = &PRICES;
        [
            self.transitions * p.per_transition,
            self.invocations * p.per_lambda_request + self.gb_seconds * p.per_gb_second_arm64,
            self.rru * p.per_read_request_unit + self.wru * p.per_write_request_unit,
            self.sqs * p.per_sqs_request,
            self.http_requests * p.per_http_api_request,
        ]
    }

    pub fn total(&self) -> f64 {
        self.usd().iter().sum()
    }
}

/// The markdown of the cost section.
pub fn report(paths: &[(String, bool, PathRun)]) -> (String, Vec<String>) {
    let mut md = String::new();
    let mut summary = Vec::new();
    let _ = writeln!(
        md,
        "| path | transitions | Lambda invocations | GB-s | DynamoDB RRU / WRU | SQS requests | API requests | USD / 1,000 tickets: Step Functions | Lambda | DynamoDB | SQS | API | **total** | + email |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (name, common, run) in paths {
        let b = Bill::of(run);
        let u = b.usd();
        let k = |x: f64| x * 1000.0;
        let label = if *common {
            format!("{name} (common refund path)")
        } else {
            name.clone()
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {:.3} | {} / {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | **{:.3}** | {:.3} |",
            b.transitions,
            b.invocations,
            b.gb_seconds,
            b.rru,
            b.wru,
            b.sqs,
            b.http_requests,
            k(u[0]),
            k(u[1]),
            k(u[2]),
            k(u[3]),
            k(u[4]),
            k(b.total()),
            k(b.emails * PRICES.per_email),
        );
        summary.push(format!(
            "cost  {name:<32} {:>3} transitions {:>3} invocations  ${:.3} / 1,000 tickets{}",
            b.transitions,
            b.invocations,
            k(b.total()),
            if *common { "  (target <= $0.35)" } else { "" }
        ));
    }
    (md, summary)
}

/// The unit price table.
pub fn price_table() -> String {
    let p = &PRICES;
    let mut md = String::new();
    let _ = writeln!(md, "| item | unit price (USD) | source |");
    let _ = writeln!(md, "|---|---|---|");
    for (item, price, source) in [
        (
            "Step Functions Standard, state transition",
            format!("{} per 1,000", p.per_transition * 1e3),
            "aws.amazon.com/step-functions/pricing",
        ),
        (
            "Lambda requests",
            format!("{} per 1M", p.per_lambda_request * 1e6),
            "aws.amazon.com/lambda/pricing",
        ),
        (
            "Lambda duration, Arm",
            format!("{} per GB-second", p.per_gb_second_arm64),
            "aws.amazon.com/lambda/pricing",
        ),
        (
            "DynamoDB on-demand write request unit",
            format!("{} per 1M", p.per_write_request_unit * 1e6),
            "aws.amazon.com/dynamodb/pricing/on-demand",
        ),
        (
            "DynamoDB on-demand read request unit",
            format!("{} per 1M", p.per_read_request_unit * 1e6),
            "aws.amazon.com/dynamodb/pricing/on-demand",
        ),
        (
            "SQS standard request (64 KB chunk)",
            format!("{} per 1M", p.per_sqs_request * 1e6),
            "aws.amazon.com/sqs/pricing",
        ),
        (
            "API Gateway HTTP API request",
            format!("{} per 1M", p.per_http_api_request * 1e6),
            "aws.amazon.com/api-gateway/pricing",
        ),
        (
            "SES outbound email (shown apart)",
            format!("{} per 1,000", p.per_email * 1e3),
            "aws.amazon.com/ses/pricing",
        ),
    ] {
        let _ = writeln!(md, "| {item} | {price} | {source} |");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(states: &[&str], notify: u64) -> PathRun {
        PathRun {
            transitions: states.len() as u64,
            invocations: BTreeMap::from([("notify".to_owned(), notify)]),
            answers: 0,
            states: states.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn each_refund_and_each_parcel_received_is_one_owed_message_besides_the_acknowledgement() {
        let returned = run(&["Diagnose", "InspectReturn", "ExecuteRefund", "Survey"], 0);
        let rejected = run(&["Diagnose", "NotifyRejected"], 0);
        assert_eq!(owed_messages(&returned), 3);
        assert_eq!(owed_messages(&rejected), 1);

        let bill = Bill::of(&returned);
        let plain = Bill::of(&run(&["Diagnose"], 0));
        assert_eq!(bill.emails - plain.emails, 2.0);
        assert_eq!(bill.wru - plain.wru, 2.0 * OWED_MESSAGE.wru);
    }
}

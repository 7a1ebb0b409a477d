//! What the HTTP handler tests share: signed API Gateway events, a sample request, tickets
//! brought into each waiting state, and a log capture.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use aftersales_domain::history::History;
use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent, WaitKind};
use aftersales_domain::ticket::{ChosenResolution, TaskToken, Ticket, Waiting};
use aftersales_domain::{
    Policy, ProblemKind, ResolutionKind, Responsibility, TicketId, diagnose, parse_request, propose,
};
use aftersales_service::signature::{WebhookSecret, sign};
use aftersales_service::store::{Created, TicketStore};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use jiff::Timestamp;
use serde_json::{Value, json};

pub const SECRET: &str = "whsec_test_http";

pub const CUSTOMER_NAME: &str = "Zhao Mingyue-Privatename";
pub const CUSTOMER_EMAIL: &str = "mingyue.private@example.com";
pub const CUSTOMER_PHONE: &str = "+86 139 5550 1234";
pub const DESCRIPTION: &str = "The space bar snapped off and the case is cracked (private text)";

pub fn now() -> Timestamp {
    "2026-11-20T09:31:00Z".parse().unwrap()
}

pub fn secrets() -> Vec<WebhookSecret> {
    vec![WebhookSecret::new(SECRET).unwrap()]
}

/// A valid `POST /v1/requests` body with personal data in every personal field.
pub fn request_json(request_id: &str) -> Value {
    json!({
        "request_id": request_id,
        "channel": "web",
        "submitted_at": "2026-11-20T09:30:00Z",
        "customer": {"id": "C-1001", "name": CUSTOMER_NAME, "email": CUSTOMER_EMAIL,
                     "phone": CUSTOMER_PHONE, "locale": "en", "tier": "standard"},
        "order": {
            "id": "ORD-5521", "currency": "CNY",
            "placed_at": "2026-11-01T10:00:00Z", "delivered_at": "2026-11-03T15:20:00Z",
            "shipping_paid": 1000,
            "lines": [
                {"line_id": "L1", "sku": "KB-87", "title": "Keyboard", "category": "electronics",
                 "quantity": 2, "unit_price": 29900},
                {"line_id": "L2", "sku": "MS-01", "title": "Mouse", "category": "electronics",
                 "quantity": 1, "unit_price": 9900}
            ],
            "payment": {"provider": "stripe", "reference": "pi_3NxR2k", "paid": 70700}
        },
        "problem": {
            "kind": "damaged_in_transit",
            "description": DESCRIPTION,
            "lines": [{"line_id": "L1", "quantity": 2}],
            "evidence": [{"kind": "photo", "url": "https://cdn.shop.example/u/1.jpg"}]
        },
        "expected_resolution": "refund"
    })
}

/// An API Gateway HTTP API (payload 2.0) event as Lambda receives it.
pub fn event(
    method: &str,
    path: &str,
    headers: Value,
    body: Option<&[u8]>,
) -> ApiGatewayV2httpRequest {
    let body = body.map(|b| String::from_utf8(b.to_vec()).unwrap());
    serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "storefront"},
            "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "20/Nov/2026:09:31:00 +0000", "timeEpoch": 1795685460000i64
        },
        "body": body,
        "isBase64Encoded": false
    }))
    .unwrap()
}

/// A request signed at `signed_at` with the test secret.
pub fn signed_at(
    method: &str,
    path: &str,
    body: &[u8],
    content_type: &str,
    signed_at: Timestamp,
) -> ApiGatewayV2httpRequest {
    let signature = sign(&WebhookSecret::new(SECRET).unwrap(), signed_at, body);
    let headers = json!({"content-type": content_type, "x-aftersales-signature": signature});
    let body = (method != "GET").then_some(body);
    event(method, path, headers, body)
}

/// A JSON `POST` signed now.
pub fn signed_post(path: &str, body: &Value) -> ApiGatewayV2httpRequest {
    let bytes = serde_json::to_vec(body).unwrap();
    signed_at("POST", path, &bytes, "application/json", now())
}

/// A `GET` signed now over the empty body.
pub fn signed_get(path: &str) -> ApiGatewayV2httpRequest {
    signed_at("GET", path, b"", "application/json", now())
}

pub fn status(response: &ApiGatewayV2httpResponse) -> i64 {
    response.status_code
}

pub fn body(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

pub fn content_type(response: &ApiGatewayV2httpResponse) -> &str {
    response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `(code, field)` of an error body, after checking its shape.
pub fn error(response: &ApiGatewayV2httpResponse) -> (String, Option<String>) {
    assert_eq!(content_type(response), "application/json");
    let body = body(response);
    let error = body["error"].as_object().expect("an error body");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        error["code"].as_str().unwrap().to_owned(),
        error
            .get("field")
            .and_then(|f| f.as_str())
            .map(str::to_owned),
    )
}

/// A stored ticket (opened from the sample request, with a diagnosis and a proposal from the
/// default policy) that waits for `kind` with `token`.
pub async fn ticket_waiting(
    store: &dyn TicketStore,
    request_id: &str,
    kind: WaitKind,
    token: &str,
) -> Ticket {
    let body = serde_json::to_vec(&request_json(request_id)).unwrap();
    let request = parse_request(&body).unwrap();
    let policy = Policy::default_policy();
    let at = now();
    let (mut ticket, first) = Ticket::open(
        TicketId::generate(at, rand_bits(request_id)),
        request.clone(),
        "f".repeat(64),
        at,
        at,
        at,
    );
    assert_eq!(store.create(&ticket, &first).await.unwrap(), Created::New);

    let history = History::default();
    let diagnosis = diagnose(&request, &history, &policy, at);
    let proposal = propose(&request, &diagnosis, &history, &policy);
    let option = proposal.options[0].clone();
    let system = |step: &str| Actor::system(step);
    let mut audit: Vec<AuditEvent> = Vec::new();
    let mut record = |ticket: &mut Ticket, actor: Actor, event: TicketEvent| {
        audit.push(ticket.record(at, actor, event).unwrap());
    };
    let diagnosed = TicketEvent::Diagnosed {
        problem_kind: ProblemKind::DamagedInTransit,
        responsibility: Responsibility::Logistics,
        needs_evidence: false,
        needs_review: false,
    };
    match kind {
        WaitKind::Evidence => record(
            &mut ticket,
            system("diagnose"),
            TicketEvent::EvidenceRequested,
        ),
        WaitKind::Decision | WaitKind::Agent | WaitKind::ReturnParcel | WaitKind::Survey => {
            record(&mut ticket, system("diagnose"), diagnosed);
            ticket.diagnosis = Some(diagnosis);
            let options = proposal.options.len() as u32;
            record(
                &mut ticket,
                system("propose"),
                TicketEvent::Proposed { options },
            );
            ticket.proposal = Some(proposal);
        }
    }
    match kind {
        WaitKind::Agent => record(
            &mut ticket,
            system("diagnose"),
            TicketEvent::EscalatedToAgent {
                reason: "amount_over_auto_approve_limit".into(),
            },
        ),
        WaitKind::ReturnParcel | WaitKind::Survey => {
            record(
                &mut ticket,
                Actor::Customer,
                TicketEvent::OptionAccepted {
                    option_id: option.id.as_str().to_owned(),
                    kind: option.kind,
                    by_default: false,
                },
            );
            ticket.chosen = Some(ChosenResolution {
                option_id: Some(option.id.as_str().to_owned()),
                kind: option.kind,
                amount: option.amount,
                chosen_by: Actor::Customer,
                exchange: None,
            });
            if kind == WaitKind::ReturnParcel {
                record(&mut ticket, system("notify"), TicketEvent::ReturnRequested);
            } else {
                record(
                    &mut ticket,
                    system("notify"),
                    TicketEvent::Resolved {
                        kind: ResolutionKind::Refund,
                    },
                );
                ticket.resolution = Some(ResolutionKind::Refund);
            }
        }
        _ => {}
    }
    ticket.waiting = Some(Waiting {
        kind,
        token: TaskToken::new(token).unwrap(),
        since: at,
    });
    ticket.version = 2;
    store.save(&ticket, 1, &audit).await.unwrap();
    ticket
}

fn rand_bits(text: &str) -> u128 {
    text.bytes().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Everything logged while the capture is installed (this thread only: use a current-thread
/// runtime).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Installs a subscriber that records every level, spans and fields included.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let capture = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || capture.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

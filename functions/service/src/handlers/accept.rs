//! `POST /v1/requests`: open an after-sales request.
//!
//! Signature, size and media type first (`http::signed_json_body`), then the canonical parser.
//! The store's idempotent create decides whether this delivery is new; the workflow is started
//! with the ticket id as execution name, so starting it again for a repeated delivery is safe
//! and heals a crash between storing the ticket and starting its run.

use std::sync::Arc;

use aftersales_domain::ticket::Ticket;
use aftersales_domain::{Policy, ServiceRequest, TicketId, parse_request};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::Method;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::http::{self, ApiError, ErrorCode};
use crate::adapters::workflow::WorkflowClient;
use crate::clock::Clock;
use crate::config::{self, ConfigError, SecretSource};
use crate::metrics::{self, BusinessEvent};
use crate::signature::WebhookSecret;
use crate::store::{Created, TableNames, TicketStore};

/// The route this handler serves.
pub const ROUTE: &str = "/v1/requests";

/// Everything `accept` needs, built once per Lambda sandbox.
pub struct Deps {
    pub store: Arc<dyn TicketStore>,
    pub workflow: Arc<dyn WorkflowClient>,
    pub clock: Arc<dyn Clock>,
    pub policy: Arc<Policy>,
    /// Every secret a request may be signed with (more than one while rotating).
    pub secrets: Vec<WebhookSecret>,
}

/// `accept`'s configuration, read once at start-up.
#[derive(Debug)]
pub struct Config {
    pub tables: TableNames,
    /// `STATE_MACHINE_ARN`: the after-sales state machine.
    pub state_machine_arn: String,
    pub webhook_secret: SecretSource,
    pub policy: Policy,
}

impl Config {
    pub const STATE_MACHINE_ARN: &'static str = "STATE_MACHINE_ARN";

    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            tables: config::table_names()?,
            state_machine_arn: config::required_env(Self::STATE_MACHINE_ARN)?,
            webhook_secret: SecretSource::from_env()?,
            policy: config::policy_from_env()?,
        })
    }
}

/// Handles one API Gateway event. Every outcome, refusals and failures included, is an HTTP
/// answer with a JSON body.
pub async fn handle(event: ApiGatewayV2httpRequest, deps: &Deps) -> ApiGatewayV2httpResponse {
    match accept(&event, deps).await {
        Ok(response) => response,
        Err(error) => {
            error.log();
            error.into_response()
        }
    }
}

async fn accept(
    event: &ApiGatewayV2httpRequest,
    deps: &Deps,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    if http::path(event) != ROUTE {
        return Err(ApiError::not_found("no such route"));
    }
    if http::method(event) != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let now = deps.clock.now();
    let body = http::signed_json_body(event, &deps.secrets, now)?;
    let request = parse_request(&body)?;
    let fingerprint = http::fingerprint(&request)?;

    let (ticket, first) = open_ticket(request, fingerprint.clone(), now, &deps.policy);
    match deps.store.create(&ticket, &first).await? {
        Created::New => {
            // Counted once stored: a repeat of this delivery is answered 200 and counts nothing.
            metrics::emit(
                now,
                &BusinessEvent::TicketReceived {
                    channel: ticket.request.channel,
                    problem_kind: ticket.request.problem.kind,
                },
            );
            start_run(deps, &ticket.id).await?;
            tracing::info!(
                ticket_id = %ticket.id,
                request_id = %ticket.request.request_id,
                channel = %ticket.request.channel,
                "request accepted"
            );
            Ok(http::json_response(202, &acknowledgement(&ticket)))
        }
        Created::Existing(existing) if existing.request_fingerprint == fingerprint => {
            if never_progressed(&existing) {
                start_run(deps, &existing.id).await?;
            }
            tracing::info!(
                ticket_id = %existing.id,
                request_id = %existing.request.request_id,
                "repeated delivery answered with its ticket"
            );
            Ok(http::json_response(200, &acknowledgement(&existing)))
        }
        Created::Existing(existing) => {
            tracing::info!(
                ticket_id = %existing.id,
                request_id = %existing.request.request_id,
                "request id reused with another body"
            );
            Err(ApiError::conflict(format!(
                "request_id '{}' was already used for a different request (ticket {})",
                existing.request.request_id, existing.id
            )))
        }
    }
}

/// A new ticket for `request`, received `now`. The SLA clock starts when the customer submitted
/// the request (as diagnosis counts it), but never later than we received it, so a storefront
/// clock running ahead cannot stretch the promise.
fn open_ticket(
    request: ServiceRequest,
    fingerprint: String,
    now: Timestamp,
    policy: &Policy,
) -> (Ticket, aftersales_domain::lifecycle::AuditEvent) {
    let start = request.submitted_at.min(now);
    let first_response_due = policy.sla.first_response.after(start);
    let resolution_due = policy.sla.resolution.after(start);
    let id = TicketId::generate(now, rand::random::<u128>());
    let (mut ticket, first) = Ticket::open(
        id,
        request,
        fingerprint,
        now,
        first_response_due,
        resolution_due,
    );
    // The workflow's first message to the customer (notify) sends the acknowledgement first.
    ticket.acknowledgement_owed = true;
    (ticket, first)
}

/// True while no step has recorded anything: the ticket's run may never have started. Once any
/// step has written, the run exists, and starting again could only start a second run after
/// Step Functions forgets the name (90 days after the run closed).
fn never_progressed(ticket: &Ticket) -> bool {
    ticket.audit_seq <= 1
}

/// The body of 202 and of every repeat's 200: the same for every delivery of one request.
fn acknowledgement(ticket: &Ticket) -> Value {
    json!({
        "ticket_id": ticket.id.as_str(),
        "status": "received",
        "first_response_due": ticket.first_response_due.to_string(),
    })
}

/// The execution input (`docs/workflow-contract.md`): the ticket id and the policy's deadlines
/// in seconds. Ids and small decisions only; the ticket stays in the store.
pub fn execution_input(ticket_id: &TicketId, policy: &Policy) -> Value {
    json!({
        "ticket_id": ticket_id.as_str(),
        "deadlines": policy.workflow_deadlines(),
    })
}

async fn start_run(deps: &Deps, ticket_id: &TicketId) -> Result<(), ApiError> {
    let input = execution_input(ticket_id, &deps.policy);
    match deps.workflow.start(ticket_id, &input).await {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::error!(ticket_id = %ticket_id, %error, "workflow not started");
            let code = if error.is_retryable() {
                ErrorCode::Unavailable
            } else {
                ErrorCode::Internal
            };
            Err(ApiError::new(
                code,
                "the request is recorded but its processing could not start yet; send the same request again",
            ))
        }
    }
}

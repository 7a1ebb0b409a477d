//! `GET /v1/tickets/{ticket_id}` (the status a storefront shows its customer) and
//! `POST /v1/tickets/{ticket_id}/responses` (an answer that resumes the waiting workflow step).
//!
//! # Ordering of an answer: nothing lost, nothing resumed twice
//! 1. One conditional save (on the ticket's version) records the answer: the domain event and
//!    its audit entry, the answer's details, its fingerprint in `responses`. Two different
//!    answers racing for one wait cannot both win it; the loser re-loads once and is re-judged
//!    (a repeat, or 409 because the ticket no longer waits for it).
//! 2. Then `SendTaskSuccess` with the wait's token. The step's token can resume its workflow
//!    only once: Step Functions refuses a used token, so no ordering here can resume twice.
//! 3. Then `waiting` is released (a second conditional save, only if it still holds that
//!    token). Until then the recorded answer keeps the token as a *pending resume*: the ticket's
//!    status has moved on, so the wait no longer fits it and no other answer can claim it, and a
//!    repeat of the same answer sends the token again. A crash or a throttled call between 1
//!    and 3 is healed by the storefront's retry instead of leaving the workflow stuck.
//!
//! A token Step Functions no longer knows (the step timed out or the run ended) still leaves the
//! answer recorded; the answer is 409 `conflict`: the step is no longer waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent, WaitKind};
use aftersales_domain::proposal::{ProposedLine, exchange_price_difference};
use aftersales_domain::request::MAX_URL_CHARS;
use aftersales_domain::ticket::{
    ChosenResolution, ExchangeFor, RecordedResponse, Remark, RemarkText, ReturnedLine,
    SurveyResult, TaskToken, Ticket,
};
use aftersales_domain::{
    Amount, Disposition, Evidence, LineId, Money, ResolutionKind, Sku, TicketId,
};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::Method;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use super::http::{self, ApiError, ErrorCode};
use crate::adapters::workflow::{WorkflowClient, WorkflowError};
use crate::clock::Clock;
use crate::config::{self, ConfigError, SecretSource};
use crate::signature::WebhookSecret;
use crate::store::{StoreError, TableNames, TicketStore};

/// Longest free text in an answer (a decline's reason, a counter's note, a survey comment).
pub const MAX_TEXT_CHARS: usize = 2000;
/// Most evidence items one answer may carry.
pub const MAX_EVIDENCE_ITEMS: usize = 20;
/// Longest agent id.
pub const MAX_AGENT_CHARS: usize = 128;

/// Everything `respond` needs, built once per Lambda sandbox.
pub struct Deps {
    pub store: Arc<dyn TicketStore>,
    pub workflow: Arc<dyn WorkflowClient>,
    pub clock: Arc<dyn Clock>,
    /// Every secret a request may be signed with (more than one while rotating).
    pub secrets: Vec<WebhookSecret>,
}

/// `respond`'s configuration, read once at start-up. It resumes tasks by token only, so it
/// needs no state machine ARN.
#[derive(Debug)]
pub struct Config {
    pub tables: TableNames,
    pub webhook_secret: SecretSource,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            tables: config::table_names()?,
            webhook_secret: SecretSource::from_env()?,
        })
    }
}

/// The routes `respond` serves, as the API documents them.
pub const STATUS_ROUTE: &str = "/v1/tickets/{ticket_id}";
pub const RESPONSES_ROUTE: &str = "/v1/tickets/{ticket_id}/responses";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route<'a> {
    Status(&'a str),
    Responses(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v1/tickets/")?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [id] if !id.is_empty() => Some(Route::Status(id)),
        [id, "responses"] if !id.is_empty() => Some(Route::Responses(id)),
        _ => None,
    }
}

/// Handles one API Gateway event. Every outcome, refusals and failures included, is an HTTP
/// answer with a JSON body.
pub async fn handle(event: ApiGatewayV2httpRequest, deps: &Deps) -> ApiGatewayV2httpResponse {
    let result = match route(http::path(&event)) {
        None => Err(ApiError::not_found("no such route")),
        Some(Route::Status(id)) if http::method(&event) == Method::GET => {
            status(&event, deps, id).await
        }
        Some(Route::Status(_)) => Err(ApiError::method_not_allowed("GET")),
        Some(Route::Responses(id)) if http::method(&event) == Method::POST => {
            respond(&event, deps, id).await
        }
        Some(Route::Responses(_)) => Err(ApiError::method_not_allowed("POST")),
    };
    match result {
        Ok(response) => response,
        Err(error) => {
            error.log();
            error.into_response()
        }
    }
}

fn ticket_id(id: &str) -> Result<TicketId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("no such ticket"))
}

async fn load(store: &dyn TicketStore, id: &TicketId) -> Result<Ticket, ApiError> {
    store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such ticket"))
}

// ---------------------------------------------------------------------------------------------
// GET /v1/tickets/{ticket_id}

async fn status(
    event: &ApiGatewayV2httpRequest,
    deps: &Deps,
    id: &str,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    let body = http::raw_body(event)?;
    http::check_signature(event, &body, &deps.secrets, deps.clock.now())?;
    let id = ticket_id(id)?;
    let ticket = load(deps.store.as_ref(), &id).await?;
    let trail = deps.store.audit_trail(&id).await?;
    Ok(http::json_response(200, &status_document(&ticket, &trail)))
}

/// The ticket as the storefront may show it to its customer: no task token, no internal error,
/// no contact data, no staff identity.
pub fn status_document(ticket: &Ticket, trail: &[AuditEvent]) -> Value {
    let mut doc = Map::new();
    doc.insert("ticket_id".into(), ticket.id.as_str().into());
    doc.insert("status".into(), ticket.status.as_str().into());
    doc.insert("order_id".into(), ticket.request.order.id.as_str().into());
    let problem_kind = ticket
        .diagnosis
        .as_ref()
        .map_or(ticket.request.problem.kind, |d| d.classification.kind);
    doc.insert("problem_kind".into(), problem_kind.as_str().into());
    if let Some(diagnosis) = &ticket.diagnosis {
        doc.insert(
            "responsibility".into(),
            diagnosis.responsibility.as_str().into(),
        );
    }
    if let Some(proposal) = &ticket.proposal {
        let options: Vec<Value> = proposal
            .options
            .iter()
            .map(|option| {
                let mut o = Map::new();
                o.insert("id".into(), option.id.as_str().into());
                o.insert("kind".into(), option.kind.as_str().into());
                if let Some(amount) = option.amount {
                    o.insert("amount".into(), amount.minor.into());
                }
                if let Some(currency) = option.amount.or(option.customer_cost).map(|m| m.currency) {
                    o.insert("currency".into(), currency.code().into());
                }
                if let Some(cost) = option.customer_cost {
                    o.insert("customer_cost".into(), cost.minor.into());
                }
                o.insert("explanation".into(), option.basis.text.clone().into());
                Value::Object(o)
            })
            .collect();
        doc.insert("proposal".into(), json!({ "options": options }));
    }
    if let Some(resolution) = ticket.resolution.or(ticket.chosen.as_ref().map(|c| c.kind)) {
        doc.insert("resolution".into(), resolution.as_str().into());
    }
    if let Some(exchange) = ticket.chosen.as_ref().and_then(|c| c.exchange.as_ref()) {
        // what the storefront ships instead, and charges (positive) or sees refunded (negative)
        doc.insert(
            "exchange".into(),
            json!({"sku": exchange.sku.as_str(), "unit_price": exchange.unit_price.minor,
                   "price_difference": exchange.price_difference.minor,
                   "currency": exchange.price_difference.currency.code()}),
        );
    }
    if let Some(waiting) = ticket
        .waiting
        .as_ref()
        .filter(|w| w.kind.fits(ticket.status))
    {
        doc.insert("waiting_for".into(), waiting.kind.as_str().into());
    }
    let timeline: Vec<Value> = trail
        .iter()
        .map(|entry| {
            json!({
                "at": entry.at.to_string(),
                "event": entry.event.name(),
                "actor": actor_role(&entry.actor),
            })
        })
        .collect();
    doc.insert("timeline".into(), Value::Array(timeline));
    if !ticket.remarks.is_empty() {
        let remarks = ticket.remarks.iter().map(remark_document).collect();
        doc.insert("remarks".into(), Value::Array(remarks));
    }
    Value::Object(doc)
}

/// A text answer as the API shows it: the role that wrote it, never a staff id.
fn remark_document(remark: &Remark) -> Value {
    let mut r = Map::new();
    r.insert("at".into(), remark.at.to_string().into());
    r.insert("actor".into(), actor_role(&remark.by).into());
    r.insert("kind".into(), remark.text.kind().into());
    r.insert("text".into(), remark.text.text().into());
    if let RemarkText::Counter {
        resolution, amount, ..
    } = &remark.text
    {
        r.insert("resolution".into(), resolution.as_str().into());
        if let Some(amount) = amount {
            r.insert("amount".into(), amount.minor.into());
            r.insert("currency".into(), amount.currency.code().into());
        }
    }
    Value::Object(r)
}

/// Who acted, by role only: staff ids and step names are internal.
fn actor_role(actor: &Actor) -> &'static str {
    match actor {
        Actor::Customer => "customer",
        Actor::Storefront => "storefront",
        Actor::Warehouse => "warehouse",
        Actor::Agent { .. } => "agent",
        Actor::System { .. } => "system",
    }
}

// ---------------------------------------------------------------------------------------------
// POST /v1/tickets/{ticket_id}/responses: the answers

/// An answer to a waiting ticket, as `POST /responses` takes it. Serialised (with `kind`), it
/// is the canonical form whose SHA-256 recognises a repeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Evidence(EvidenceAnswer),
    Decision(DecisionAnswer),
    ReturnReceived(ReturnAnswer),
    Survey(SurveyAnswer),
    AgentDecision(AgentAnswer),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceAnswer {
    pub evidence: Vec<Evidence>,
}

/// Exactly one of `option_id`, `decline` and `counter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<Counter>,
    /// With `option_id` of an exchange option: the variant to send instead of the claimed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_for: Option<ExchangeTarget>,
}

/// Another variant for an exchange (another size or colour), as the storefront prices it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeTarget {
    pub sku: Sku,
    /// Price of one unit, in minor units of the order's currency.
    pub unit_price: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

/// What the customer asks for instead: a person decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    pub kind: ResolutionKind,
    /// Minor units of the order's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnAnswer {
    pub lines: Vec<ReturnLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    pub line_id: LineId,
    pub quantity: u32,
    pub disposition: Disposition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    #[serde(deserialize_with = "survey_score")]
    pub score: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An operator's decision on an escalated ticket: exactly one of `option` and `reject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentAnswer {
    /// The deciding agent's staff id (kept in the audit trail, never shown to customers).
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<AgentOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<Reason>,
}

/// The resolution an agent grants: a proposal option by id, or a kind (with an amount for
/// money kinds), or both when the kind confirms the option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentOption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResolutionKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// For an exchange: the variant to send instead of the claimed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_for: Option<ExchangeTarget>,
}

fn survey_score<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let value = Value::deserialize(d)?;
    value
        .as_u64()
        .filter(|n| (1..=5).contains(n))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom("must be an integer from 1 to 5"))
}

/// The answer kinds, in the API's order.
pub const ANSWER_KINDS: [&str; 5] = [
    "evidence",
    "decision",
    "return_received",
    "survey",
    "agent_decision",
];

impl Answer {
    /// The API name of the answer's kind (`return_received`).
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Evidence(_) => "evidence",
            Answer::Decision(_) => "decision",
            Answer::ReturnReceived(_) => "return_received",
            Answer::Survey(_) => "survey",
            Answer::AgentDecision(_) => "agent_decision",
        }
    }

    /// What a ticket must be waiting for to take this answer.
    pub fn wait_kind(&self) -> WaitKind {
        match self {
            Answer::Evidence(_) => WaitKind::Evidence,
            Answer::Decision(_) => WaitKind::Decision,
            Answer::ReturnReceived(_) => WaitKind::ReturnParcel,
            Answer::Survey(_) => WaitKind::Survey,
            Answer::AgentDecision(_) => WaitKind::Agent,
        }
    }

    /// The audit events an answer of this kind records.
    fn events(&self) -> &'static [&'static str] {
        match self {
            Answer::Evidence(_) => &["evidence_received"],
            Answer::Decision(_) => &["option_accepted", "proposal_declined", "counter_offered"],
            Answer::ReturnReceived(_) => &["return_received"],
            Answer::Survey(_) => &["survey_answered"],
            Answer::AgentDecision(_) => &["agent_decided"],
        }
    }
}

/// Parses a `POST /responses` body: the shape and every check that needs no ticket. Errors
/// name the field at fault (`lines[1].disposition`).
pub fn parse_answer(body: &[u8]) -> Result<Answer, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {}", without_position(&e)),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the body must be a JSON object",
        ));
    };
    let kinds = ANSWER_KINDS.join(", ");
    let kind = match object.remove("kind") {
        None => return Err(ApiError::field("kind", "is required")),
        Some(Value::String(kind)) => kind,
        Some(_) => {
            return Err(ApiError::field("kind", format!("must be one of: {kinds}")));
        }
    };
    let rest = Value::Object(object);
    let answer = match kind.as_str() {
        "evidence" => Answer::Evidence(fields(rest)?),
        "decision" => Answer::Decision(fields(rest)?),
        "return_received" => Answer::ReturnReceived(fields(rest)?),
        "survey" => Answer::Survey(fields(rest)?),
        "agent_decision" => Answer::AgentDecision(fields(rest)?),
        _ => {
            return Err(ApiError::field("kind", format!("must be one of: {kinds}")));
        }
    };
    check(&answer)?;
    Ok(answer)
}

fn fields<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = api_path(e.path());
        let message = e.inner().to_string();
        field_error(path, &message)
    })
}

fn field_error(path: String, message: &str) -> ApiError {
    let named = |path: &str, name: &str| {
        if path.is_empty() || path.ends_with(name) {
            if path.is_empty() {
                name.to_owned()
            } else {
                path.to_owned()
            }
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = between(message, "missing field `", "`") {
        return ApiError::field(named(&path, name), "is required");
    }
    if let Some(name) = between(message, "unknown field `", "`") {
        return ApiError::field(named(&path, name), "is not a known field");
    }
    if let Some(name) = between(message, "duplicate field `", "`") {
        return ApiError::field(named(&path, name), "appears more than once");
    }
    let at = if path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    if let Some(expected) = message.split_once(", expected ").map(|(_, e)| e) {
        return ApiError::field(at, format!("must be {}", plain_expected(expected)));
    }
    ApiError::field(at, message)
}

/// serde's description of what it wanted, in the API's words.
fn plain_expected(expected: &str) -> String {
    if let Some(variants) = expected.strip_prefix("one of ") {
        return format!("one of: {}", variants.replace('`', ""));
    }
    match expected {
        "u8" | "u16" | "u32" | "u64" | "i64" => "a whole number".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "an object".to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other => other.replace('`', ""),
    }
}

fn api_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn between<'a>(text: &'a str, prefix: &str, end: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    let rest = &text[start..];
    rest.find(end).map(|i| &rest[..i])
}

fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn check_text(field: &str, text: &str, required: bool) -> Result<(), ApiError> {
    if required && text.trim().is_empty() {
        return Err(ApiError::field(field, "must not be blank"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::field(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// `https://host[/path]`, no credentials, no spaces: what the request parser accepts too.
fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    !host.is_empty() && !host.contains('@') && !url.chars().any(char::is_whitespace)
}

/// Checks that need no ticket.
fn check(answer: &Answer) -> Result<(), ApiError> {
    match answer {
        Answer::Evidence(a) => {
            if a.evidence.is_empty() {
                return Err(ApiError::field("evidence", "must hold at least one item"));
            }
            if a.evidence.len() > MAX_EVIDENCE_ITEMS {
                return Err(ApiError::field(
                    "evidence",
                    format!("must hold at most {MAX_EVIDENCE_ITEMS} items"),
                ));
            }
            for (i, item) in a.evidence.iter().enumerate() {
                let field = format!("evidence[{i}].url");
                if item.url.chars().count() > MAX_URL_CHARS {
                    return Err(ApiError::field(
                        field,
                        format!("must be at most {MAX_URL_CHARS} characters"),
                    ));
                }
                if !is_https_url(&item.url) {
                    return Err(ApiError::field(
                        field,
                        "must be an https:// URL with a host, no credentials and no spaces",
                    ));
                }
            }
        }
        Answer::Decision(a) => {
            let given = [
                ("option_id", a.option_id.is_some()),
                ("decline", a.decline.is_some()),
                ("counter", a.counter.is_some()),
            ];
            exactly_one(&given, "option_id, decline or counter")?;
            if let Some(option_id) = &a.option_id
                && option_id.trim().is_empty()
            {
                return Err(ApiError::field("option_id", "must not be blank"));
            }
            if a.exchange_for.is_some() && a.option_id.is_none() {
                return Err(ApiError::field(
                    "exchange_for",
                    "is only allowed with option_id (an exchange option)",
                ));
            }
            if let Some(decline) = &a.decline {
                check_text("decline.reason", &decline.reason, true)?;
            }
            if let Some(counter) = &a.counter {
                if counter.kind == ResolutionKind::Reject {
                    return Err(ApiError::field(
                        "counter.kind",
                        "must be a resolution, not reject (decline the proposal instead)",
                    ));
                }
                check_text("counter.note", &counter.note, true)?;
            }
        }
        Answer::ReturnReceived(a) => {
            if a.lines.is_empty() {
                return Err(ApiError::field("lines", "must name at least one line"));
            }
            for (i, line) in a.lines.iter().enumerate() {
                if line.quantity == 0 {
                    return Err(ApiError::field(
                        format!("lines[{i}].quantity"),
                        "must be at least 1",
                    ));
                }
            }
        }
        Answer::Survey(a) => {
            if let Some(comment) = &a.comment {
                check_text("comment", comment, false)?;
            }
        }
        Answer::AgentDecision(a) => {
            let agent = a.agent.as_str();
            if agent.trim().is_empty()
                || agent.trim() != agent
                || agent.chars().any(char::is_control)
                || agent.chars().count() > MAX_AGENT_CHARS
            {
                return Err(ApiError::field(
                    "agent",
                    format!(
                        "must be the agent's id: 1 to {MAX_AGENT_CHARS} characters, no surrounding spaces"
                    ),
                ));
            }
            let given = [
                ("option", a.option.is_some()),
                ("reject", a.reject.is_some()),
            ];
            exactly_one(&given, "option or reject")?;
            if let Some(option) = &a.option {
                if option.option_id.is_none() && option.kind.is_none() {
                    return Err(ApiError::field(
                        "option",
                        "must name an option_id or a kind",
                    ));
                }
                if option.kind == Some(ResolutionKind::Reject) {
                    return Err(ApiError::field(
                        "option.kind",
                        "must be a resolution, not reject (use reject instead)",
                    ));
                }
                if option.amount.is_some() && option.option_id.is_some() {
                    return Err(ApiError::field(
                        "option.amount",
                        "is taken from the option; give an amount only with a kind",
                    ));
                }
                if option.exchange_for.is_some()
                    && option.kind.is_some_and(|k| k != ResolutionKind::Exchange)
                {
                    return Err(ApiError::field(
                        "option.exchange_for",
                        "is only allowed for an exchange",
                    ));
                }
                if option.amount.is_some() && !option.kind.is_some_and(pays_money) {
                    return Err(ApiError::field(
                        "option.amount",
                        "is only allowed for refund, return_refund, price_adjustment and coupon",
                    ));
                }
            }
            if let Some(reject) = &a.reject {
                check_text("reject.reason", &reject.reason, true)?;
            }
        }
    }
    Ok(())
}

fn exactly_one(given: &[(&str, bool)], names: &str) -> Result<(), ApiError> {
    let present: Vec<&str> = given.iter().filter(|(_, p)| *p).map(|(n, _)| *n).collect();
    match present.as_slice() {
        [_] => Ok(()),
        [] => Err(ApiError::field(
            given[0].0,
            format!("one of {names} is required"),
        )),
        [_, second, ..] => Err(ApiError::field(
            *second,
            format!("only one of {names} may be given"),
        )),
    }
}

fn pays_money(kind: ResolutionKind) -> bool {
    matches!(
        kind,
        ResolutionKind::Refund
            | ResolutionKind::ReturnRefund
            | ResolutionKind::PriceAdjustment
            | ResolutionKind::Coupon
    )
}

// ---------------------------------------------------------------------------------------------
// POST /v1/tickets/{ticket_id}/responses: recording and resuming

/// What an answer does to the ticket beyond its event.
enum Detail {
    None,
    Evidence(Vec<Evidence>),
    Chosen(ChosenResolution),
    Returned(Vec<ReturnedLine>),
    Survey(SurveyResult),
}

/// An answer judged against its ticket.
struct Outcome {
    actor: Actor,
    event: TicketEvent,
    detail: Detail,
    /// The answer's free text, kept on the ticket (never in the audit event).
    remark: Option<RemarkText>,
    /// What the waiting state receives (`docs/workflow-contract.md`).
    output: Value,
}

/// Judges `answer` against `ticket` (the ticket-dependent checks) without changing anything.
fn outcome(ticket: &Ticket, answer: &Answer, now: Timestamp) -> Result<Outcome, ApiError> {
    let currency = ticket.request.order.currency;
    Ok(match answer {
        Answer::Evidence(a) => {
            let items = u32::try_from(a.evidence.len()).unwrap_or(u32::MAX);
            Outcome {
                actor: Actor::Customer,
                event: TicketEvent::EvidenceReceived { items },
                detail: Detail::Evidence(a.evidence.clone()),
                remark: None,
                output: json!({"kind": "evidence", "items": items}),
            }
        }
        Answer::Decision(a) => {
            if let Some(option_id) = &a.option_id {
                let option = proposal_option(ticket, option_id, "option_id")?;
                let exchange = a
                    .exchange_for
                    .as_ref()
                    .map(|target| {
                        exchange_for(ticket, option.kind, &option.lines, target, "exchange_for")
                    })
                    .transpose()?;
                Outcome {
                    actor: Actor::Customer,
                    event: TicketEvent::OptionAccepted {
                        option_id: option_id.clone(),
                        kind: option.kind,
                        by_default: false,
                    },
                    detail: Detail::Chosen(ChosenResolution {
                        option_id: Some(option_id.clone()),
                        kind: option.kind,
                        amount: option.amount,
                        chosen_by: Actor::Customer,
                        exchange,
                    }),
                    remark: None,
                    output: json!({"kind": "decision", "outcome": "accepted",
                                   "option_id": option_id, "resolution": option.kind.as_str()}),
                }
            } else if let Some(counter) = &a.counter {
                if let Some(amount) = counter.amount {
                    check_cap(ticket, amount.in_currency(currency), "counter.amount")?;
                }
                Outcome {
                    actor: Actor::Customer,
                    event: TicketEvent::CounterOffered { kind: counter.kind },
                    detail: Detail::None,
                    remark: Some(RemarkText::Counter {
                        resolution: counter.kind,
                        amount: counter.amount.map(|a| a.in_currency(currency)),
                        note: counter.note.clone(),
                    }),
                    output: json!({"kind": "decision", "outcome": "countered",
                                   "resolution": counter.kind.as_str()}),
                }
            } else {
                Outcome {
                    actor: Actor::Customer,
                    event: TicketEvent::ProposalDeclined,
                    detail: Detail::None,
                    remark: a.decline.as_ref().map(|d| RemarkText::DeclineReason {
                        reason: d.reason.clone(),
                    }),
                    output: json!({"kind": "decision", "outcome": "declined"}),
                }
            }
        }
        Answer::ReturnReceived(a) => {
            let returned = returned_lines(ticket, &a.lines)?;
            let units = returned.iter().map(|l| l.quantity).sum::<u32>();
            let all_restockable = returned
                .iter()
                .all(|l| l.disposition == Disposition::Restock);
            Outcome {
                actor: Actor::Warehouse,
                event: TicketEvent::ReturnReceived {
                    units,
                    all_restockable,
                },
                detail: Detail::Returned(returned),
                remark: None,
                output: json!({"kind": "return_received", "all_restockable": all_restockable,
                               "units": units}),
            }
        }
        Answer::Survey(a) => Outcome {
            actor: Actor::Customer,
            event: TicketEvent::SurveyAnswered { score: a.score },
            detail: Detail::Survey(SurveyResult {
                score: Some(a.score),
                at: now,
            }),
            remark: a.comment.as_ref().map(|comment| RemarkText::SurveyComment {
                comment: comment.clone(),
            }),
            output: json!({"kind": "survey", "score": a.score}),
        },
        Answer::AgentDecision(a) => {
            let agent = Actor::Agent {
                id: a.agent.clone(),
            };
            let chosen = match &a.option {
                Some(option) => agent_choice(ticket, option, agent.clone())?,
                None => ChosenResolution {
                    option_id: None,
                    kind: ResolutionKind::Reject,
                    amount: None,
                    chosen_by: agent.clone(),
                    exchange: None,
                },
            };
            let output = if chosen.kind == ResolutionKind::Reject {
                json!({"kind": "agent_decision", "outcome": "reject"})
            } else {
                json!({"kind": "agent_decision", "outcome": "option",
                       "resolution": chosen.kind.as_str()})
            };
            Outcome {
                actor: agent,
                event: TicketEvent::AgentDecided {
                    resolution: chosen.kind,
                },
                detail: Detail::Chosen(chosen),
                remark: a.reject.as_ref().map(|r| RemarkText::RejectReason {
                    reason: r.reason.clone(),
                }),
                output,
            }
        }
    })
}

fn proposal_option<'a>(
    ticket: &'a Ticket,
    option_id: &str,
    field: &str,
) -> Result<&'a aftersales_domain::ProposalOption, ApiError> {
    let options = ticket
        .proposal
        .as_ref()
        .map(|p| p.options.as_slice())
        .unwrap_or_default();
    options
        .iter()
        .find(|o| o.id.as_str() == option_id)
        .ok_or_else(|| {
            let known: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
            let message = if known.is_empty() {
                "the ticket has no proposal to choose from".to_owned()
            } else {
                format!(
                    "is not an option of the proposal (expected one of: {})",
                    known.join(", ")
                )
            };
            ApiError::field(field, message)
        })
}

/// What is left to pay back on the order: paid minus refunded (the diagnosis' cap when it has
/// one, which also counts other tickets' refunds).
fn check_cap(ticket: &Ticket, amount: Money, field: &str) -> Result<(), ApiError> {
    let paid = ticket
        .request
        .order
        .payment
        .paid
        .in_currency(ticket.request.order.currency);
    let left = match &ticket.diagnosis {
        Some(d) => d.amounts.cap,
        None => ticket
            .refunded()
            .and_then(|r| paid.checked_sub(r))
            .unwrap_or(paid),
    };
    if amount.minor > left.minor {
        return Err(ApiError::field(
            field,
            format!(
                "must not exceed {} (what is left to pay back on the order, in minor units)",
                left.minor
            ),
        ));
    }
    Ok(())
}

fn agent_choice(
    ticket: &Ticket,
    option: &AgentOption,
    agent: Actor,
) -> Result<ChosenResolution, ApiError> {
    let currency = ticket.request.order.currency;
    if let Some(option_id) = &option.option_id {
        let proposed = proposal_option(ticket, option_id, "option.option_id")?;
        if option.kind.is_some_and(|k| k != proposed.kind) {
            return Err(ApiError::field(
                "option.kind",
                format!("option {option_id} is a {}", proposed.kind),
            ));
        }
        let exchange = option
            .exchange_for
            .as_ref()
            .map(|target| {
                exchange_for(
                    ticket,
                    proposed.kind,
                    &proposed.lines,
                    target,
                    "option.exchange_for",
                )
            })
            .transpose()?;
        return Ok(ChosenResolution {
            option_id: Some(option_id.clone()),
            kind: proposed.kind,
            amount: proposed.amount,
            chosen_by: agent,
            exchange,
        });
    }
    // `check` made sure a kind is given when no option_id is.
    let kind = option.kind.unwrap_or(ResolutionKind::Reject);
    let claimed: Vec<ProposedLine> = ticket
        .request
        .problem
        .lines
        .iter()
        .map(|l| ProposedLine {
            line_id: l.line_id.clone(),
            quantity: l.quantity.get(),
        })
        .collect();
    let exchange = option
        .exchange_for
        .as_ref()
        .map(|target| exchange_for(ticket, kind, &claimed, target, "option.exchange_for"))
        .transpose()?;
    let amount = option.amount.map(|a| a.in_currency(currency));
    if let Some(amount) = amount {
        check_cap(ticket, amount, "option.amount")?;
    }
    Ok(ChosenResolution {
        option_id: None,
        kind,
        amount,
        chosen_by: agent,
        exchange,
    })
}

/// The exchange for `target` of every unit `lines` cover, priced against what the customer paid
/// for them (`exchange_price_difference`, summed over the lines).
fn exchange_for(
    ticket: &Ticket,
    kind: ResolutionKind,
    lines: &[ProposedLine],
    target: &ExchangeTarget,
    field: &str,
) -> Result<ExchangeFor, ApiError> {
    if kind != ResolutionKind::Exchange {
        return Err(ApiError::field(
            field,
            format!("is only allowed for an exchange, not a {kind}"),
        ));
    }
    let order = &ticket.request.order;
    let currency = order.currency;
    let mut difference = Money::zero(currency);
    for line in lines {
        let ordered = order.line(&line.line_id).ok_or_else(|| {
            ApiError::field(field, format!("line {} is not in the order", line.line_id))
        })?;
        let part = exchange_price_difference(ordered, line.quantity, target.unit_price, currency)
            .and_then(|part| difference.checked_add(part))
            .map_err(|e| ApiError::field(format!("{field}.unit_price"), e.to_string()))?;
        difference = part;
    }
    Ok(ExchangeFor {
        sku: target.sku.clone(),
        unit_price: target.unit_price.in_currency(currency),
        price_difference: difference,
    })
}

/// The warehouse's lines, checked against the order and the claim.
fn returned_lines(ticket: &Ticket, lines: &[ReturnLine]) -> Result<Vec<ReturnedLine>, ApiError> {
    let claimed: HashMap<&LineId, u32> = ticket
        .request
        .problem
        .lines
        .iter()
        .map(|l| (&l.line_id, l.quantity.get()))
        .collect();
    let mut seen: BTreeMap<&LineId, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let field = format!("lines[{i}].line_id");
        if ticket.request.order.line(&line.line_id).is_none() {
            return Err(ApiError::field(
                field,
                format!("line '{}' is not in the order", line.line_id),
            ));
        }
        if let Some(first) = seen.insert(&line.line_id, i) {
            return Err(ApiError::field(
                field,
                format!(
                    "line '{}' is listed more than once (first at lines[{first}])",
                    line.line_id
                ),
            ));
        }
        let Some(&claimed) = claimed.get(&line.line_id) else {
            return Err(ApiError::field(
                field,
                format!("line '{}' is not part of the claim", line.line_id),
            ));
        };
        if line.quantity > claimed {
            return Err(ApiError::field(
                format!("lines[{i}].quantity"),
                format!(
                    "quantity {} is more than the {claimed} claimed",
                    line.quantity
                ),
            ));
        }
        out.push(ReturnedLine {
            line_id: line.line_id.clone(),
            quantity: line.quantity,
            disposition: line.disposition,
        });
    }
    Ok(out)
}

/// The ticket after the answer, its audit entry, the output and the wait's token.
struct Recorded {
    ticket: Ticket,
    audit: AuditEvent,
    output: Value,
    token: TaskToken,
}

/// Applies `answer` to a copy of `ticket`, or says why the ticket cannot take it.
fn record(
    ticket: &Ticket,
    answer: &Answer,
    fingerprint: &str,
    now: Timestamp,
) -> Result<Recorded, ApiError> {
    let wanted = answer.wait_kind();
    let waiting = ticket
        .waiting
        .as_ref()
        .filter(|w| w.kind.fits(ticket.status));
    let token = match waiting {
        Some(w) if w.kind == wanted => w.token.clone(),
        Some(w) => {
            return Err(ApiError::conflict(format!(
                "the ticket is waiting for {}, not for a {} answer",
                w.kind,
                answer.kind()
            )));
        }
        None => {
            return Err(ApiError::conflict(format!(
                "the ticket is not waiting for an answer (it is {})",
                ticket.status
            )));
        }
    };
    let outcome = outcome(ticket, answer, now)?;
    let mut updated = ticket.clone();
    let audit = updated
        .record(now, outcome.actor.clone(), outcome.event)
        .map_err(|e| ApiError::conflict(e.to_string()))?;
    if let Some(text) = outcome.remark {
        updated.remarks.push(Remark {
            by: outcome.actor,
            at: now,
            text,
        });
    }
    match outcome.detail {
        Detail::None => {}
        Detail::Evidence(items) => updated.request.problem.evidence.extend(items),
        Detail::Chosen(chosen) => updated.chosen = Some(chosen),
        Detail::Returned(lines) => updated.returned.extend(lines),
        Detail::Survey(survey) => updated.survey = Some(survey),
    }
    updated.responses.push(RecordedResponse {
        kind: wanted,
        fingerprint: fingerprint.to_owned(),
        at: now,
    });
    // `waiting` keeps the token until the workflow took it (see the module docs).
    updated.version = ticket.version.saturating_add(1);
    Ok(Recorded {
        ticket: updated,
        audit,
        output: outcome.output,
        token,
    })
}

/// The answer the ticket already took with this fingerprint, if any.
fn earlier<'a>(
    ticket: &'a Ticket,
    kind: WaitKind,
    fingerprint: &str,
) -> Option<&'a RecordedResponse> {
    ticket
        .responses
        .iter()
        .find(|r| r.kind == kind && r.fingerprint == fingerprint)
}

/// The token of a recorded answer whose resume is not confirmed yet: the wait it answered is
/// still on the ticket, but the ticket has moved past it.
fn pending_resume(ticket: &Ticket, answered: &RecordedResponse) -> Option<TaskToken> {
    ticket
        .waiting
        .as_ref()
        .filter(|w| {
            w.kind == answered.kind && !w.kind.fits(ticket.status) && w.since <= answered.at
        })
        .map(|w| w.token.clone())
}

/// Conditional saves of one answer before a lost race is the storefront's to retry.
const SAVE_ATTEMPTS: u32 = 5;

async fn respond(
    event: &ApiGatewayV2httpRequest,
    deps: &Deps,
    id: &str,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    let now = deps.clock.now();
    let body = http::signed_json_body(event, &deps.secrets, now)?;
    let id = ticket_id(id)?;
    let answer = parse_answer(&body)?;
    let fingerprint = http::fingerprint(&answer)?;
    let store = deps.store.as_ref();

    // A conditional save that loses to a concurrent writer (the step that parked the wait is
    // still recording its messages, another answer) re-reads the ticket and re-checks the answer
    // against it; the storefront sees a conflict only when the ticket keeps changing.
    let mut attempts = 0;
    let recorded = loop {
        attempts += 1;
        let ticket = load(store, &id).await?;
        if let Some(answered) = earlier(&ticket, answer.wait_kind(), &fingerprint) {
            return repeat(deps, &ticket, answered, &answer).await;
        }
        let recorded = record(&ticket, &answer, &fingerprint, now)?;
        match store
            .save(
                &recorded.ticket,
                ticket.version,
                std::slice::from_ref(&recorded.audit),
            )
            .await
        {
            Ok(()) => break recorded,
            Err(StoreError::Conflict(_)) if attempts < SAVE_ATTEMPTS => {}
            Err(error) => return Err(error.into()),
        }
    };
    tracing::info!(ticket_id = %id, kind = answer.kind(), event = recorded.audit.event.name(), "answer recorded");

    let status = recorded.ticket.status.as_str();
    match resume(deps, &id, &recorded.token, &recorded.output).await {
        Resumed::Yes | Resumed::AlreadyGone => Ok(accepted(202, &id, status, &answer)),
        Resumed::StepGone => Err(step_gone()),
        Resumed::NotYet(error) => Err(error),
    }
}

/// A repeat of an answer the ticket took: 200 with the first answer's body, resuming the
/// workflow only if the first attempt could not.
async fn repeat(
    deps: &Deps,
    ticket: &Ticket,
    answered: &RecordedResponse,
    answer: &Answer,
) -> Result<ApiGatewayV2httpResponse, ApiError> {
    let trail = deps.store.audit_trail(&ticket.id).await?;
    let status = trail
        .iter()
        .find(|e| e.at == answered.at && answer.events().contains(&e.event.name()))
        .map_or(ticket.status, |e| e.status);
    tracing::info!(ticket_id = %ticket.id, kind = answer.kind(), "repeated answer");
    if let Some(token) = pending_resume(ticket, answered) {
        let output = outcome(ticket, answer, answered.at)?.output;
        match resume(deps, &ticket.id, &token, &output).await {
            Resumed::Yes | Resumed::AlreadyGone => {}
            Resumed::StepGone => return Err(step_gone()),
            Resumed::NotYet(error) => return Err(error),
        }
    }
    Ok(accepted(200, &ticket.id, status.as_str(), answer))
}

fn accepted(code: u16, id: &TicketId, status: &str, answer: &Answer) -> ApiGatewayV2httpResponse {
    http::json_response(
        code,
        &json!({"ticket_id": id.as_str(), "status": status, "accepted": answer.kind()}),
    )
}

fn step_gone() -> ApiError {
    ApiError::conflict("the answer is recorded, but the step is no longer waiting for it")
}

enum Resumed {
    Yes,
    /// Step Functions no longer waits on this token: an earlier attempt resumed it, the step
    /// was retried with a new token, or its deadline fired; in each case the workflow goes on
    /// with the answer recorded on the ticket.
    AlreadyGone,
    /// The token is not valid: the workflow went on without the answer.
    StepGone,
    NotYet(ApiError),
}

/// Sends the answer to the waiting step, then releases the wait unless the engine was
/// unavailable (the next repeat of the answer tries again).
async fn resume(deps: &Deps, id: &TicketId, token: &TaskToken, output: &Value) -> Resumed {
    let resumed = match deps
        .workflow
        .send_task_success(token.expose(), output)
        .await
    {
        Ok(()) => Resumed::Yes,
        Err(WorkflowError::TaskDoesNotExist) => Resumed::AlreadyGone,
        // The wait's deadline fired as the answer came: the state after it finds the answer on
        // the ticket (`AlreadyAnswered`) and the run goes on with it.
        Err(WorkflowError::TaskTimedOut) => Resumed::AlreadyGone,
        Err(error @ WorkflowError::InvalidToken) => {
            tracing::warn!(ticket_id = %id, %error, "the waiting step is gone");
            Resumed::StepGone
        }
        Err(error) => {
            tracing::error!(ticket_id = %id, %error, "workflow not resumed");
            return Resumed::NotYet(ApiError::new(
                ErrorCode::Unavailable,
                "the answer is recorded but the workflow could not be resumed yet; send the same answer again",
            ));
        }
    };
    release_wait(deps.store.as_ref(), id, token).await;
    resumed
}

/// Clears `waiting` if it still holds `token`. Best effort: a wait left behind no longer fits
/// the ticket's status, so nothing can answer it, and the next wait replaces it.
async fn release_wait(store: &dyn TicketStore, id: &TicketId, token: &TaskToken) {
    for _ in 0..2 {
        let ticket = match store.get(id).await {
            Ok(Some(ticket)) => ticket,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(ticket_id = %id, %error, "wait not released");
                return;
            }
        };
        if ticket.waiting.as_ref().is_none_or(|w| &w.token != token) {
            return;
        }
        let mut released = ticket.clone();
        released.waiting = None;
        released.version = ticket.version.saturating_add(1);
        match store.save(&released, ticket.version, &[]).await {
            Ok(()) => return,
            Err(StoreError::Conflict(_)) => continue,
            Err(error) => {
                tracing::warn!(ticket_id = %id, %error, "wait not released");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised_by_shape() {
        assert_eq!(route("/v1/tickets/t1"), Some(Route::Status("t1")));
        assert_eq!(
            route("/v1/tickets/t1/responses"),
            Some(Route::Responses("t1"))
        );
        assert_eq!(route("/v1/tickets/"), None);
        assert_eq!(route("/v1/tickets/t1/other"), None);
        assert_eq!(route("/v1/requests"), None);
    }

    #[test]
    fn field_paths_point_into_lists() {
        let body = br#"{"kind":"return_received","lines":[
            {"line_id":"L1","quantity":1,"disposition":"restock"},
            {"line_id":"L2","quantity":1,"disposition":"lost"}]}"#;
        let error = parse_answer(body).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("lines[1].disposition"));
        assert!(
            error.message.starts_with("must be one of: restock"),
            "{}",
            error.message
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let error =
            parse_answer(br#"{"kind":"decision","counter":{"kind":"refund"}}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("counter.note"));
        assert_eq!(error.message, "is required");
        let error = parse_answer(br#"{"kind":"survey","score":4,"stars":5}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("stars"));
    }

    #[test]
    fn the_canonical_form_ignores_spacing_and_key_order() {
        let a = parse_answer(br#"{"kind":"survey","score":4,"comment":"ok"}"#).unwrap();
        let b = parse_answer(br#"{ "comment": "ok", "score": 4, "kind": "survey" }"#).unwrap();
        assert_eq!(
            http::fingerprint(&a).unwrap(),
            http::fingerprint(&b).unwrap()
        );
    }
}

//! Refunds through a payment gateway, exactly once per idempotency key.
//!
//! [`PaymentGateway`] has three implementations: [`MerchantEndpointGateway`] (the merchant's own
//! refund endpoint, contract below), [`StripeGateway`] (Stripe's Refunds API) and
//! [`InMemoryPaymentGateway`] (tests and the local stack). Every one answers a repeated
//! idempotency key with the first refund, so a retried or re-run refund step never pays twice.
//!
//! Errors say what the caller may do next: [`PaymentError::Transient`] is retried with the same
//! key; [`PaymentError::Declined`] is final for this request; [`PaymentError::Misconfigured`]
//! needs the merchant to fix credentials or the URL; [`PaymentError::UnexpectedResponse`] means
//! the provider answered something we cannot trust (a person looks at it).
//!
//! # The merchant refund endpoint (contract v1)
//!
//! A merchant whose payments are not on Stripe exposes one HTTPS endpoint. We call it as:
//!
//! ```text
//! POST <refund endpoint URL>
//! Content-Type: application/json
//! Idempotency-Key: tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:execute-refund
//! X-Aftersales-Signature: t=1795000000,v1=<hex>
//!
//! {"idempotency_key": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:execute-refund",
//!  "ticket_id": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB",
//!  "payment_reference": "pi_3N...",
//!  "amount": 29900,
//!  "currency": "CNY",
//!  "reason": "damaged_in_transit"}
//! ```
//!
//! - The signature is the one of the public API (HMAC-SHA256 with the merchant's webhook secret
//!   over `<t>.<raw body>`); the endpoint should verify it and refuse requests older than 300 s.
//! - `amount` is in minor units of `currency` (ISO 4217); `reason` is the after-sales problem kind.
//! - A repeated `Idempotency-Key` must return the first refund and must not refund again.
//!
//! It answers `200` or `201` with
//! `{"refund_id": "rf_1", "amount": 29900, "currency": "CNY", "status": "succeeded" | "pending",
//! "created_at": "2026-11-20T09:30:00Z"}`; `amount` and `currency` must be the refunded ones.
//!
//! It declines with `400`, `402`, `409` or `422` and the API's error body
//! `{"error": {"code": "charge_already_refunded", "message": "..."}}`. `401`/`403`/`404`/`405`
//! are treated as misconfiguration; `408`, `425`, `429` and `5xx` (and timeouts) are retried
//! later with the same idempotency key.

use std::fmt;
use std::time::Duration;

use aftersales_domain::{Currency, Money, PaymentReference, ProblemKind, TicketId};
use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::signature::{SIGNATURE_HEADER, WebhookSecret, sign};

/// The header that carries the idempotency key, for both gateways.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// One refund to make. The idempotency key is deterministic (see [`RefundRequest::idempotency_key`]):
/// the same ticket and step always produce the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: String,
    pub payment_reference: PaymentReference,
    /// What to refund: positive, in the currency the customer paid in.
    pub amount: Money,
    /// Why the customer is refunded.
    pub reason: ProblemKind,
    pub ticket_id: TicketId,
}

impl RefundRequest {
    /// The idempotency key for the refund made by `step` of a ticket's workflow
    /// (`tkt_…:execute-refund`): stable across retries and re-runs of that step.
    pub fn idempotency_key(ticket_id: &TicketId, step: &str) -> String {
        format!("{ticket_id}:{step}")
    }
}

/// Where the refund stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// The money is on its way back.
    Succeeded,
    /// Accepted; the provider finishes it later.
    Pending,
    /// Accepted; the customer must act (Stripe: e.g. give bank details).
    RequiresAction,
}

/// The provider's record of a refund it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    pub provider_refund_id: String,
    pub amount: Money,
    pub status: RefundStatus,
    pub created_at: Timestamp,
}

/// Why a refund was not made. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Final: the provider refused this refund (already refunded, amount too large, card expired).
    #[error("refund declined ({code}): {message}")]
    Declined { code: String, message: String },
    /// Try again later with the same idempotency key (timeouts, 5xx, 429, connection errors).
    #[error("refund temporarily failed: {message}")]
    Transient { message: String },
    /// The gateway refuses our credentials or endpoint; retrying will not help.
    #[error("payment gateway misconfigured: {message}")]
    Misconfigured { message: String },
    /// The provider answered something we cannot interpret or trust (unparsable body, a refund
    /// in another currency). The refund may have happened: a person must look.
    #[error("unexpected answer from the payment gateway: {message}")]
    UnexpectedResponse { message: String },
}

/// Makes refunds.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, PaymentError>;
}

/// Timeouts for calls to payment providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    pub connect: Duration,
    /// The whole request, from connecting to the last byte of the answer.
    pub total: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(20),
        }
    }
}

/// The HTTP client for payment gateways: rustls, the given timeouts, no redirects (a refund is
/// never re-sent somewhere else). Build it once and share it.
pub fn http_client(timeouts: HttpTimeouts) -> Result<reqwest::Client, PaymentError> {
    crate::runtime::tls::client_builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aftersales/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PaymentError::Misconfigured {
            message: format!("cannot build the HTTP client: {}", e.without_url()),
        })
}

fn check_amount(req: &RefundRequest) -> Result<(), PaymentError> {
    if req.amount.minor <= 0 {
        return Err(PaymentError::Declined {
            code: "invalid_amount".into(),
            message: format!("a refund must be positive, got {}", req.amount),
        });
    }
    Ok(())
}

fn transport_error(e: reqwest::Error) -> PaymentError {
    let e = e.without_url();
    let message = if e.is_timeout() {
        format!("timed out: {e}")
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    };
    PaymentError::Transient { message }
}

/// Only `https://`, or plain `http://` to this machine (tests and the local stack).
fn check_endpoint(url: &Url) -> Result<(), PaymentError> {
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        scheme => Err(PaymentError::Misconfigured {
            message: format!("payment endpoints must use https, not {scheme}"),
        }),
    }
}

/// The merchant's own refund endpoint (contract in the module docs).
#[derive(Clone)]
pub struct MerchantEndpointGateway {
    http: reqwest::Client,
    url: Url,
    secret: WebhookSecret,
    clock: fn() -> Timestamp,
}

impl fmt::Debug for MerchantEndpointGateway {
    // The URL may carry a merchant's access token in its path or query: show the host only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantEndpointGateway")
            .field("host", &self.url.host_str().unwrap_or_default())
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct MerchantRefundBody<'a> {
    idempotency_key: &'a str,
    ticket_id: &'a TicketId,
    payment_reference: &'a PaymentReference,
    amount: i64,
    currency: Currency,
    reason: ProblemKind,
}

#[derive(Deserialize)]
struct MerchantRefundAnswer {
    refund_id: String,
    amount: i64,
    currency: String,
    status: String,
    created_at: Timestamp,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl MerchantEndpointGateway {
    /// `url` must be `https://` (or `http://` on loopback). Requests are signed with `secret`.
    pub fn new(
        http: reqwest::Client,
        url: &str,
        secret: WebhookSecret,
    ) -> Result<Self, PaymentError> {
        let url = Url::parse(url).map_err(|e| PaymentError::Misconfigured {
            message: format!("the refund endpoint is not a URL: {e}"),
        })?;
        check_endpoint(&url)?;
        Ok(MerchantEndpointGateway {
            http,
            url,
            secret,
            clock: Timestamp::now,
        })
    }

    /// Signs with times from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl PaymentGateway for MerchantEndpointGateway {
    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, PaymentError> {
        check_amount(req)?;
        let body = serde_json::to_vec(&MerchantRefundBody {
            idempotency_key: &req.idempotency_key,
            ticket_id: &req.ticket_id,
            payment_reference: &req.payment_reference,
            amount: req.amount.minor,
            currency: req.amount.currency,
            reason: req.reason,
        })
        .map_err(|e| PaymentError::UnexpectedResponse {
            message: format!("cannot encode the refund request: {e}"),
        })?;
        let signature = sign(&self.secret, (self.clock)(), &body);
        let idempotency_key = header_value(&req.idempotency_key)?;

        let response = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY_HEADER, idempotency_key)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;

        let outcome = if status.is_success() {
            merchant_receipt(req, &bytes)
        } else {
            Err(merchant_error(status, &bytes))
        };
        log_outcome("merchant_endpoint", req, &outcome);
        outcome
    }
}

fn header_value(key: &str) -> Result<HeaderValue, PaymentError> {
    HeaderValue::from_str(key).map_err(|_| PaymentError::Declined {
        code: "invalid_idempotency_key".into(),
        message: "the idempotency key must be printable ASCII".into(),
    })
}

fn merchant_receipt(req: &RefundRequest, bytes: &[u8]) -> Result<RefundReceipt, PaymentError> {
    let answer: MerchantRefundAnswer =
        serde_json::from_slice(bytes).map_err(|e| PaymentError::UnexpectedResponse {
            message: format!("the refund endpoint's answer is not the documented JSON: {e}"),
        })?;
    let currency: Currency =
        answer
            .currency
            .parse()
            .map_err(|_| PaymentError::UnexpectedResponse {
                message: format!("refund {} has an unknown currency", answer.refund_id),
            })?;
    if currency != req.amount.currency {
        return Err(currency_mismatch(
            &answer.refund_id,
            currency,
            req.amount.currency,
        ));
    }
    let status = match answer.status.as_str() {
        "succeeded" => RefundStatus::Succeeded,
        "pending" => RefundStatus::Pending,
        "failed" | "canceled" => {
            return Err(PaymentError::Declined {
                code: format!("refund_{}", answer.status),
                message: format!("refund {} {}", answer.refund_id, answer.status),
            });
        }
        other => {
            return Err(PaymentError::UnexpectedResponse {
                message: format!(
                    "refund {} has an unknown status '{other}'",
                    answer.refund_id
                ),
            });
        }
    };
    Ok(RefundReceipt {
        provider_refund_id: answer.refund_id,
        amount: Money::new(answer.amount, currency),
        status,
        created_at: answer.created_at,
    })
}

fn merchant_error(status: StatusCode, bytes: &[u8]) -> PaymentError {
    let body = serde_json::from_slice::<ErrorEnvelope>(bytes)
        .ok()
        .map(|e| e.error);
    let code = body
        .as_ref()
        .and_then(|b| b.code.clone())
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = body
        .and_then(|b| b.message)
        .unwrap_or_else(|| format!("the refund endpoint answered {status}"));
    match status.as_u16() {
        401 | 403 | 404 | 405 => PaymentError::Misconfigured {
            message: format!("the refund endpoint answered {status} ({code})"),
        },
        408 | 425 | 429 | 500..=599 => PaymentError::Transient {
            message: format!("the refund endpoint answered {status} ({code})"),
        },
        400..=499 => PaymentError::Declined { code, message },
        _ => PaymentError::Misconfigured {
            message: format!("the refund endpoint answered {status}; expected 200, 201 or 4xx"),
        },
    }
}

fn currency_mismatch(refund_id: &str, got: Currency, wanted: Currency) -> PaymentError {
    PaymentError::UnexpectedResponse {
        message: format!("refund {refund_id} was made in {got}, but {wanted} was requested"),
    }
}

fn log_outcome(gateway: &str, req: &RefundRequest, outcome: &Result<RefundReceipt, PaymentError>) {
    match outcome {
        Ok(receipt) => tracing::info!(
            gateway,
            ticket_id = %req.ticket_id,
            refund_id = %receipt.provider_refund_id,
            status = ?receipt.status,
            "refund accepted"
        ),
        Err(error) => tracing::warn!(
            gateway,
            ticket_id = %req.ticket_id,
            error = %error,
            "refund not made"
        ),
    }
}

/// A Stripe secret or restricted API key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct StripeApiKey(String);

impl StripeApiKey {
    pub fn new(key: impl Into<String>) -> Result<Self, PaymentError> {
        let key = key.into();
        if key.trim().is_empty() || HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
            return Err(PaymentError::Misconfigured {
                message: "the Stripe API key is empty or not printable ASCII".into(),
            });
        }
        Ok(StripeApiKey(key))
    }
}

impl fmt::Debug for StripeApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StripeApiKey(<redacted>)")
    }
}

/// Stripe's Refunds API (`POST /v1/refunds`).
#[derive(Debug, Clone)]
pub struct StripeGateway {
    http: reqwest::Client,
    api_key: StripeApiKey,
    base_url: String,
}

#[derive(Deserialize)]
struct StripeRefund {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    created: i64,
    #[serde(default)]
    failure_reason: Option<String>,
}

impl StripeGateway {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.stripe.com";

    pub fn new(http: reqwest::Client, api_key: StripeApiKey) -> Self {
        StripeGateway {
            http,
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
        }
    }

    /// Talks to another Stripe-compatible base URL (tests, a proxy).
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, PaymentError> {
        let url = Url::parse(base_url).map_err(|e| PaymentError::Misconfigured {
            message: format!("the Stripe base URL is not a URL: {e}"),
        })?;
        check_endpoint(&url)?;
        self.base_url = base_url.trim_end_matches('/').to_owned();
        Ok(self)
    }

    fn refunds_url(&self) -> Result<Url, PaymentError> {
        Url::parse(&format!("{}/v1/refunds", self.base_url)).map_err(|e| {
            PaymentError::Misconfigured {
                message: format!("cannot build the Stripe refunds URL: {e}"),
            }
        })
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, PaymentError> {
        check_amount(req)?;
        let amount = to_stripe_amount(req.amount)?;
        let target = if req.payment_reference.as_str().starts_with("pi_") {
            "payment_intent"
        } else {
            "charge"
        };
        let form = [
            (target, req.payment_reference.as_str().to_owned()),
            ("amount", amount.to_string()),
            // The only one of Stripe's reasons (duplicate, fraudulent, requested_by_customer)
            // that fits an after-sales refund; our own reason goes in the metadata.
            ("reason", "requested_by_customer".to_owned()),
            ("metadata[ticket_id]", req.ticket_id.to_string()),
            ("metadata[problem_kind]", req.reason.as_str().to_owned()),
        ];
        let response = self
            .http
            .post(self.refunds_url()?)
            .header(AUTHORIZATION, format!("Bearer {}", self.api_key.0))
            .header(IDEMPOTENCY_KEY_HEADER, header_value(&req.idempotency_key)?)
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let should_retry = response
            .headers()
            .get("Stripe-Should-Retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true");
        let bytes = response.bytes().await.map_err(transport_error)?;

        let outcome = if status.is_success() {
            stripe_receipt(req, &bytes)
        } else {
            Err(stripe_error(status, should_retry, &bytes))
        };
        log_outcome("stripe", req, &outcome);
        outcome
    }
}

/// Stripe's amount unit differs from ISO 4217's minor unit for a few currencies: ISK is sent
/// with two decimals, MGA with none.
fn stripe_scale(currency: Currency) -> (i64, i64) {
    match currency.code() {
        "ISK" => (100, 1),
        "MGA" => (1, 100),
        _ => (1, 1),
    }
}

fn to_stripe_amount(money: Money) -> Result<i64, PaymentError> {
    let (multiply, divide) = stripe_scale(money.currency);
    if money.minor % divide != 0 {
        return Err(PaymentError::Declined {
            code: "amount_not_representable".into(),
            message: format!(
                "Stripe cannot refund {money}: {} has no minor unit there",
                money.currency
            ),
        });
    }
    (money.minor / divide)
        .checked_mul(multiply)
        .ok_or_else(|| PaymentError::Declined {
            code: "invalid_amount".into(),
            message: format!("{money} is too large"),
        })
}

fn from_stripe_amount(amount: i64, currency: Currency) -> Option<Money> {
    let (multiply, divide) = stripe_scale(currency);
    if amount % multiply != 0 {
        return None;
    }
    (amount / multiply)
        .checked_mul(divide)
        .map(|minor| Money::new(minor, currency))
}

fn stripe_receipt(req: &RefundRequest, bytes: &[u8]) -> Result<RefundReceipt, PaymentError> {
    let refund: StripeRefund =
        serde_json::from_slice(bytes).map_err(|e| PaymentError::UnexpectedResponse {
            message: format!("Stripe's answer is not a refund object: {e}"),
        })?;
    let currency: Currency = refund.currency.to_ascii_uppercase().parse().map_err(|_| {
        PaymentError::UnexpectedResponse {
            message: format!("refund {} has an unknown currency", refund.id),
        }
    })?;
    if currency != req.amount.currency {
        return Err(currency_mismatch(&refund.id, currency, req.amount.currency));
    }
    let amount = from_stripe_amount(refund.amount, currency).ok_or_else(|| {
        PaymentError::UnexpectedResponse {
            message: format!(
                "refund {} has an amount not representable in {currency}",
                refund.id
            ),
        }
    })?;
    let status = match refund.status.as_str() {
        "succeeded" => RefundStatus::Succeeded,
        "pending" => RefundStatus::Pending,
        "requires_action" => RefundStatus::RequiresAction,
        "failed" | "canceled" => {
            return Err(PaymentError::Declined {
                code: refund
                    .failure_reason
                    .unwrap_or_else(|| format!("refund_{}", refund.status)),
                message: format!("Stripe refund {} {}", refund.id, refund.status),
            });
        }
        other => {
            return Err(PaymentError::UnexpectedResponse {
                message: format!("refund {} has an unknown status '{other}'", refund.id),
            });
        }
    };
    let created_at =
        Timestamp::from_second(refund.created).map_err(|_| PaymentError::UnexpectedResponse {
            message: format!("refund {} has an impossible creation time", refund.id),
        })?;
    Ok(RefundReceipt {
        provider_refund_id: refund.id,
        amount,
        status,
        created_at,
    })
}

fn stripe_error(status: StatusCode, should_retry: Option<bool>, bytes: &[u8]) -> PaymentError {
    let body = serde_json::from_slice::<ErrorEnvelope>(bytes)
        .ok()
        .map(|e| e.error);
    let kind = body
        .as_ref()
        .and_then(|b| b.kind.clone())
        .unwrap_or_default();
    let code = body
        .as_ref()
        .and_then(|b| b.decline_code.clone().or_else(|| b.code.clone()))
        .unwrap_or_else(|| {
            if kind.is_empty() {
                format!("http_{}", status.as_u16())
            } else {
                kind.clone()
            }
        });
    let message = body
        .and_then(|b| b.message)
        .unwrap_or_else(|| format!("Stripe answered {status}"));

    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || kind == "authentication_error"
        || kind == "permission_error"
    {
        return PaymentError::Misconfigured {
            message: format!("Stripe refused the API key ({status}, {code})"),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || kind == "api_error"
        || kind == "rate_limit_error"
        || code == "lock_timeout"
        || should_retry == Some(true)
    {
        return PaymentError::Transient {
            message: format!("Stripe answered {status} ({code}): {message}"),
        };
    }
    PaymentError::Declined { code, message }
}

/// Records refunds in memory and honours idempotency keys like a real provider: the same key
/// returns the first receipt; the same key with another amount or payment is declined.
#[derive(Debug, Default)]
pub struct InMemoryPaymentGateway {
    state: std::sync::Mutex<InMemoryPayments>,
}

#[derive(Debug, Default)]
struct InMemoryPayments {
    refunds: Vec<(RefundRequest, RefundReceipt)>,
    scripted: std::collections::VecDeque<PaymentError>,
}

impl InMemoryPaymentGateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next refund call (with a new key) fails with `error` instead of refunding.
    pub fn fail_next(&self, error: PaymentError) {
        self.lock().scripted.push_back(error);
    }

    /// Every refund made, in order (one per idempotency key).
    pub fn refunds(&self) -> Vec<(RefundRequest, RefundReceipt)> {
        self.lock().refunds.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InMemoryPayments> {
        // A panic while holding the lock leaves plain data behind, still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl PaymentGateway for InMemoryPaymentGateway {
    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, PaymentError> {
        check_amount(req)?;
        let mut state = self.lock();
        if let Some((first, receipt)) = state
            .refunds
            .iter()
            .find(|(r, _)| r.idempotency_key == req.idempotency_key)
        {
            if first.amount != req.amount || first.payment_reference != req.payment_reference {
                return Err(PaymentError::Declined {
                    code: "idempotency_key_reused".into(),
                    message: "the idempotency key was used for a different refund".into(),
                });
            }
            return Ok(receipt.clone());
        }
        if let Some(error) = state.scripted.pop_front() {
            return Err(error);
        }
        let receipt = RefundReceipt {
            provider_refund_id: format!("rf_mem_{}", state.refunds.len() + 1),
            amount: req.amount,
            status: RefundStatus::Succeeded,
            created_at: Timestamp::now(),
        };
        state.refunds.push((req.clone(), receipt.clone()));
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, code: &str) -> Money {
        Money::new(minor, code.parse().unwrap())
    }

    #[test]
    fn stripe_amounts_follow_stripe_units_for_isk_and_mga() {
        assert_eq!(to_stripe_amount(money(29900, "CNY")), Ok(29900));
        assert_eq!(to_stripe_amount(money(1500, "JPY")), Ok(1500));
        assert_eq!(to_stripe_amount(money(1050, "KWD")), Ok(1050));
        assert_eq!(to_stripe_amount(money(150, "ISK")), Ok(15000));
        assert_eq!(to_stripe_amount(money(2500, "MGA")), Ok(25));
        assert_eq!(
            to_stripe_amount(money(2550, "MGA")).unwrap_err(),
            PaymentError::Declined {
                code: "amount_not_representable".into(),
                message: "Stripe cannot refund 25.50 MGA: MGA has no minor unit there".into(),
            }
        );
        assert_eq!(
            from_stripe_amount(15000, "ISK".parse().unwrap()),
            Some(money(150, "ISK"))
        );
        assert_eq!(from_stripe_amount(15050, "ISK".parse().unwrap()), None);
        assert_eq!(
            from_stripe_amount(25, "MGA".parse().unwrap()),
            Some(money(2500, "MGA"))
        );
    }

    #[test]
    fn idempotency_keys_are_the_ticket_and_step() {
        let ticket: TicketId = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB".parse().unwrap();
        assert_eq!(
            RefundRequest::idempotency_key(&ticket, "execute-refund"),
            "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:execute-refund"
        );
    }

    #[test]
    fn api_keys_are_redacted_in_debug_output() {
        let key = StripeApiKey::new("sk_test_51Hsecret").unwrap();
        let gateway =
            StripeGateway::new(crate::runtime::tls::client_builder().build().unwrap(), key);
        let shown = format!("{gateway:?}");
        assert!(!shown.contains("sk_test_51Hsecret"), "{shown}");
        assert!(shown.contains("StripeApiKey(<redacted>)"), "{shown}");
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let secret = WebhookSecret::new("whsec").unwrap();
        let client = crate::runtime::tls::client_builder().build().unwrap();
        assert_eq!(
            MerchantEndpointGateway::new(
                client.clone(),
                "http://shop.example/refunds",
                secret.clone()
            )
            .unwrap_err(),
            PaymentError::Misconfigured {
                message: "payment endpoints must use https, not http".into()
            }
        );
        assert!(
            MerchantEndpointGateway::new(client.clone(), "http://127.0.0.1:9/r", secret.clone())
                .is_ok()
        );
        assert!(
            MerchantEndpointGateway::new(client, "https://shop.example/refunds", secret).is_ok()
        );
    }

    fn request(key: &str, minor: i64) -> RefundRequest {
        RefundRequest {
            idempotency_key: key.into(),
            payment_reference: PaymentReference::new("pi_3Nabc").unwrap(),
            amount: money(minor, "CNY"),
            reason: ProblemKind::QualityDefect,
            ticket_id: "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn in_memory_gateway_refunds_once_per_idempotency_key() {
        let gateway = InMemoryPaymentGateway::new();

        let first = gateway.refund(&request("k1", 500)).await.unwrap();
        let again = gateway.refund(&request("k1", 500)).await.unwrap();

        assert_eq!(first, again);
        assert_eq!(first.provider_refund_id, "rf_mem_1");
        assert_eq!(first.amount, money(500, "CNY"));
        assert_eq!(gateway.refunds().len(), 1);
    }

    #[tokio::test]
    async fn in_memory_gateway_declines_a_reused_key_with_another_amount() {
        let gateway = InMemoryPaymentGateway::new();
        gateway.refund(&request("k1", 500)).await.unwrap();

        let error = gateway.refund(&request("k1", 600)).await.unwrap_err();

        assert_eq!(
            error,
            PaymentError::Declined {
                code: "idempotency_key_reused".into(),
                message: "the idempotency key was used for a different refund".into(),
            }
        );
        assert_eq!(gateway.refunds().len(), 1);
    }

    #[tokio::test]
    async fn in_memory_gateway_fails_as_scripted_and_then_refunds() {
        let gateway = InMemoryPaymentGateway::new();
        let timeout = PaymentError::Transient {
            message: "timed out".into(),
        };
        gateway.fail_next(timeout.clone());

        assert_eq!(gateway.refund(&request("k1", 500)).await, Err(timeout));
        assert_eq!(
            gateway
                .refund(&request("k1", 500))
                .await
                .map(|r| r.provider_refund_id),
            Ok("rf_mem_1".to_owned())
        );
    }
}

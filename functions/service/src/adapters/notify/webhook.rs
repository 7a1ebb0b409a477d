//! The merchant's notification webhook (payload in the parent module's docs).

use std::fmt;
use std::time::Duration;

use aftersales_domain::{Locale, TicketId};
use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

use super::message::{
    Delivery, IdempotencyKey, NotificationChannel, NotifyError, OutgoingMessage, Recipient,
    log_outcome,
};
use super::milestone::Milestone;
use crate::signature::{SIGNATURE_HEADER, WebhookSecret, sign};

const CHANNEL: &str = "merchant_webhook";

/// The header that carries the message's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The `type` of every notification payload.
pub const NOTIFICATION_TYPE: &str = "aftersales.notification";

/// Connect and total timeouts for webhook calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookTimeouts {
    pub connect: Duration,
    /// The whole request, from connecting to the last byte of the answer.
    pub total: Duration,
}

impl Default for WebhookTimeouts {
    fn default() -> Self {
        WebhookTimeouts {
            connect: Duration::from_secs(3),
            total: Duration::from_secs(10),
        }
    }
}

/// POSTs each message, signed, to the merchant's notification webhook; the storefront shows
/// it in-app or sends it by SMS.
#[derive(Clone)]
pub struct MerchantWebhookChannel {
    http: reqwest::Client,
    url: Url,
    secret: WebhookSecret,
    clock: fn() -> Timestamp,
}

impl fmt::Debug for MerchantWebhookChannel {
    // The URL may carry the merchant's access token: show the host only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantWebhookChannel")
            .field("host", &self.url.host_str().unwrap_or_default())
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    idempotency_key: &'a IdempotencyKey,
    ticket_id: &'a TicketId,
    milestone: Milestone,
    locale: Locale,
    recipient: &'a Recipient,
    subject: &'a str,
    body: &'a str,
}

impl MerchantWebhookChannel {
    /// `url` must be `https://` (or `http://` on loopback, for tests and the local stack).
    pub fn new(url: &str, secret: WebhookSecret) -> Result<Self, NotifyError> {
        Self::with_timeouts(url, secret, WebhookTimeouts::default())
    }

    pub fn with_timeouts(
        url: &str,
        secret: WebhookSecret,
        timeouts: WebhookTimeouts,
    ) -> Result<Self, NotifyError> {
        let url = Url::parse(url).map_err(|e| misconfigured(format!("not a URL: {e}")))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            scheme => {
                return Err(misconfigured(format!(
                    "the webhook must use https, not {scheme}"
                )));
            }
        }
        // No redirects: a signed message goes to the configured URL or nowhere.
        let http = crate::runtime::tls::client_builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("aftersales/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| misconfigured(format!("cannot build the HTTP client: {e}")))?;
        Ok(MerchantWebhookChannel {
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

    async fn post(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let body = serde_json::to_vec(&Payload {
            kind: NOTIFICATION_TYPE,
            idempotency_key: msg.idempotency_key(),
            ticket_id: msg.ticket_id(),
            milestone: msg.milestone(),
            locale: msg.locale(),
            recipient: msg.recipient(),
            subject: msg.subject(),
            body: msg.body(),
        })
        .map_err(|e| NotifyError::Rejected {
            channel: CHANNEL,
            reason: format!("cannot encode the payload: {e}"),
        })?;
        let key = HeaderValue::from_str(msg.idempotency_key().as_str()).map_err(|_| {
            NotifyError::Rejected {
                channel: CHANNEL,
                reason: "the idempotency key is not a valid header value".into(),
            }
        })?;
        let signature = sign(&self.secret, (self.clock)(), &body);

        let response = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY_HEADER, key)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(Delivery {
                channel: CHANNEL,
                reference: None,
            });
        }
        // The answer's body is not read: it may echo the message back.
        let reason = format!("the webhook answered HTTP {}", status.as_u16());
        Err(match status.as_u16() {
            408 | 425 | 429 | 500..=599 => NotifyError::Retryable {
                channel: CHANNEL,
                reason,
            },
            400..=499 => NotifyError::Rejected {
                channel: CHANNEL,
                reason,
            },
            _ => NotifyError::Misconfigured {
                channel: CHANNEL,
                reason: format!("{reason}; expected 2xx (redirects are not followed)"),
            },
        })
    }
}

#[async_trait]
impl NotificationChannel for MerchantWebhookChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let outcome = self.post(msg).await;
        log_outcome(CHANNEL, msg, &outcome);
        outcome
    }
}

fn misconfigured(reason: String) -> NotifyError {
    NotifyError::Misconfigured {
        channel: CHANNEL,
        reason,
    }
}

/// Timeouts, refused connections and broken answers may all pass: retry.
fn transport_error(e: reqwest::Error) -> NotifyError {
    let e = e.without_url();
    let reason = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        format!("transport error: {e}")
    };
    NotifyError::Retryable {
        channel: CHANNEL,
        reason,
    }
}

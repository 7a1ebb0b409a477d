//! Messages to customers at each milestone of a ticket, localised (`zh-CN`, `en`) and sent
//! through one or more channels.
//!
//! - [`Milestone`]: every message the workflow sends; [`render`] writes one from the
//!   templates in `templates/<locale>.toml` and a typed [`MessageContext`].
//! - [`OutgoingMessage`]: the rendered message, its recipient and its idempotency key
//!   (`<ticket id>:notify:<milestone>:<seq>`, `seq` chosen by the caller).
//! - [`NotificationChannel`]: [`MerchantWebhookChannel`], [`SesEmailChannel`],
//!   [`OutboxChannel`] (in memory); [`FanOut`] sends through several and reports each result.
//!
//! Errors say what to do next: [`NotifyError::Retryable`] (timeouts, 5xx, 429, throttling)
//! is retried with the same message; the others are final for that channel.
//!
//! Logs carry the channel, ticket id, milestone and idempotency key only: never an address, a
//! name, a subject or a body. `Debug` of messages and addresses is redacted likewise. Keep
//! the AWS SDK's crates below `trace` in deployed functions: at `trace` they log raw HTTP
//! responses, and SES error messages quote the recipient's address.
//!
//! # The merchant notification webhook (contract v1)
//!
//! The storefront shows the message in-app or sends it by SMS. We call it as:
//!
//! ```text
//! POST <notification webhook URL>
//! Content-Type: application/json
//! Idempotency-Key: tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:1
//! X-Aftersales-Signature: t=1795000000,v1=<hex>
//!
//! {"type": "aftersales.notification",
//!  "idempotency_key": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:1",
//!  "ticket_id": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB",
//!  "milestone": "refund_issued",
//!  "locale": "zh-CN",
//!  "recipient": {"customer_id": "C-1001", "email": "li@example.com"},
//!  "subject": "…",
//!  "body": "…"}
//! ```
//!
//! - The signature is the public API's: HMAC-SHA256 with the merchant's webhook secret over
//!   `<t>.<raw body>`; the webhook should verify it and refuse requests older than 300 s.
//! - `recipient` has `customer_id` (the storefront's id), `email`, or both.
//! - `subject` and `body` are plain text in `locale`; `body` uses `\n` line breaks.
//! - The same `Idempotency-Key` may arrive again (a retried step): show or send it once.
//!
//! Any `2xx` means delivered. `408`, `425`, `429`, `5xx`, timeouts and refused connections
//! are retried later with the same key; any other `4xx` is final; redirects are not followed.

mod fan_out;
mod message;
mod milestone;
mod outbox;
mod ses;
mod template;
mod webhook;

pub use fan_out::{ChannelOutcome, FanOut, FanOutReport};
pub use message::{
    AddressError, Delivery, EmailAddress, IdempotencyKey, NotificationChannel, NotifyError,
    OutgoingMessage, Recipient,
};
pub use milestone::{Milestone, Placeholder, UnknownMilestone};
pub use outbox::OutboxChannel;
pub use ses::SesEmailChannel;
pub use template::{
    MessageContext, OptionSummary, RenderError, RenderedMessage, ReturnPostage, ReturnShipment,
    TemplateCatalog, TemplateError, render,
};
pub use webhook::{
    IDEMPOTENCY_KEY_HEADER, MerchantWebhookChannel, NOTIFICATION_TYPE, WebhookTimeouts,
};

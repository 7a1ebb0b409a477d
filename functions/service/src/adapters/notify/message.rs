//! The message a channel sends, its recipient, and what a channel reports back.

use std::fmt;

use aftersales_domain::{CustomerId, Locale, TicketId};
use async_trait::async_trait;
use serde::Serialize;

use super::milestone::Milestone;
use super::template::{MessageContext, RenderError, RenderedMessage, render};

/// Longest address SMTP allows in a path.
const MAX_EMAIL_LEN: usize = 254;

/// A customer's email address. Personal data: its `Debug` is redacted and it has no `Display`,
/// so it cannot slip into a log line by accident.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct EmailAddress(String);

/// Why a recipient was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The message names neither an email address nor a storefront customer.
    #[error("a recipient needs an email address or a storefront customer id")]
    NoRecipient,
    /// The reason never repeats the address.
    #[error("not an email address: {0}")]
    InvalidEmail(&'static str),
}

impl EmailAddress {
    /// Accepts `local@domain` with no spaces, control characters or header punctuation.
    /// Deliverability is the mail service's business; this only keeps out what cannot be an
    /// address or could break a header.
    pub fn new(address: impl Into<String>) -> Result<Self, AddressError> {
        let address = address.into();
        if address.len() > MAX_EMAIL_LEN {
            return Err(AddressError::InvalidEmail("longer than 254 characters"));
        }
        if address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        {
            return Err(AddressError::InvalidEmail(
                "contains spaces, control characters or <>,;",
            ));
        }
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or(AddressError::InvalidEmail("no '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(AddressError::InvalidEmail(
                "the part before '@' must have 1 to 64 characters",
            ));
        }
        if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') {
            return Err(AddressError::InvalidEmail("no domain after '@'"));
        }
        Ok(EmailAddress(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<EmailAddress> for String {
    fn from(email: EmailAddress) -> String {
        email.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

/// Who a message is for: an email address, a storefront customer id, or both. Its `Debug`
/// shows the customer id (the merchant's opaque key) and hides the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<CustomerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<EmailAddress>,
}

impl Recipient {
    /// At least one of the two is required.
    pub fn new(
        email: Option<EmailAddress>,
        customer_id: Option<CustomerId>,
    ) -> Result<Self, AddressError> {
        if email.is_none() && customer_id.is_none() {
            return Err(AddressError::NoRecipient);
        }
        Ok(Recipient { customer_id, email })
    }

    pub fn email(&self) -> Option<&EmailAddress> {
        self.email.as_ref()
    }

    pub fn customer_id(&self) -> Option<&CustomerId> {
        self.customer_id.as_ref()
    }
}

/// `<ticket id>:notify:<milestone>:<seq>`: the same message of the same ticket always has the
/// same key, so a retried or re-run notify step is recognised by every channel that dedups.
/// `seq` tells apart messages of one milestone the caller sends deliberately more than once
/// (a second reminder).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(ticket_id: &TicketId, milestone: Milestone, seq: u32) -> Self {
        IdempotencyKey(format!("{ticket_id}:notify:{milestone}:{seq}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rendered message for one customer, ready for any channel.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingMessage {
    idempotency_key: IdempotencyKey,
    ticket_id: TicketId,
    milestone: Milestone,
    locale: Locale,
    recipient: Recipient,
    subject: String,
    body: String,
}

impl OutgoingMessage {
    /// A message with already rendered text; the key is derived from ticket, milestone, `seq`.
    pub fn new(
        ticket_id: TicketId,
        milestone: Milestone,
        seq: u32,
        locale: Locale,
        recipient: Recipient,
        text: RenderedMessage,
    ) -> Self {
        OutgoingMessage {
            idempotency_key: IdempotencyKey::new(&ticket_id, milestone, seq),
            ticket_id,
            milestone,
            locale,
            recipient,
            subject: text.subject,
            body: text.body,
        }
    }

    /// Renders `milestone` in `locale` from the built-in templates for `ctx`'s ticket.
    pub fn compose(
        milestone: Milestone,
        seq: u32,
        locale: Locale,
        recipient: Recipient,
        ctx: &MessageContext,
    ) -> Result<Self, RenderError> {
        let text = render(milestone, locale, ctx)?;
        Ok(OutgoingMessage::new(
            ctx.ticket_id.clone(),
            milestone,
            seq,
            locale,
            recipient,
            text,
        ))
    }

    pub fn idempotency_key(&self) -> &IdempotencyKey {
        &self.idempotency_key
    }

    pub fn ticket_id(&self) -> &TicketId {
        &self.ticket_id
    }

    pub fn milestone(&self) -> Milestone {
        self.milestone
    }

    pub fn locale(&self) -> Locale {
        self.locale
    }

    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn body(&self) -> &str {
        &self.body
    }
}

impl fmt::Debug for OutgoingMessage {
    // Subject and body speak of the customer's case: only ids are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("idempotency_key", &self.idempotency_key)
            .field("milestone", &self.milestone)
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

/// A channel accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The channel's name ([`NotificationChannel::name`]).
    pub channel: &'static str,
    /// The provider's id for the message (SES message id, outbox position), when it gives one.
    pub reference: Option<String>,
}

/// Why a channel did not deliver a message. Messages carry no addresses, names or text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Try again later with the same message (timeouts, 5xx, 429, throttling).
    #[error("{channel}: temporarily unable to deliver ({reason}); retry later")]
    Retryable {
        channel: &'static str,
        reason: String,
    },
    /// The receiver refused this message; sending it again will not help.
    #[error("{channel}: message refused ({reason})")]
    Rejected {
        channel: &'static str,
        reason: String,
    },
    /// The channel sends email and the recipient has none: nothing was sent.
    #[error("{channel}: the recipient has no email address; nothing was sent")]
    NoEmailAddress { channel: &'static str },
    /// The channel cannot work as configured (bad URL, unusable sender).
    #[error("{channel}: misconfigured: {reason}")]
    Misconfigured {
        channel: &'static str,
        reason: String,
    },
}

impl NotifyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Retryable { .. })
    }

    pub fn channel(&self) -> &'static str {
        match self {
            NotifyError::Retryable { channel, .. }
            | NotifyError::Rejected { channel, .. }
            | NotifyError::NoEmailAddress { channel }
            | NotifyError::Misconfigured { channel, .. } => channel,
        }
    }
}

/// Sends messages to customers one way (merchant webhook, email, outbox).
#[async_trait]
pub trait NotificationChannel: Send + Sync {
    /// A short stable name for reports and logs (`merchant_webhook`, `ses_email`, `outbox`).
    fn name(&self) -> &'static str;

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError>;
}

/// Logs a send's outcome with ids only: never the recipient, subject or body.
pub(crate) fn log_outcome(
    channel: &'static str,
    msg: &OutgoingMessage,
    outcome: &Result<Delivery, NotifyError>,
) {
    match outcome {
        Ok(_) => tracing::info!(
            channel,
            ticket_id = %msg.ticket_id,
            milestone = %msg.milestone,
            idempotency_key = %msg.idempotency_key,
            "notification delivered"
        ),
        Err(error) => tracing::warn!(
            channel,
            ticket_id = %msg.ticket_id,
            milestone = %msg.milestone,
            idempotency_key = %msg.idempotency_key,
            retryable = error.is_retryable(),
            error = %error,
            "notification not delivered"
        ),
    }
}

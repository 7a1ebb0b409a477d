//! Email through Amazon SES (API v2, `SendEmail` with simple content).

use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};

use super::message::{Delivery, NotificationChannel, NotifyError, OutgoingMessage, log_outcome};

const CHANNEL: &str = "ses_email";
const CHARSET: &str = "UTF-8";

/// Sends each message as a plain-text UTF-8 email to the recipient's address, tagged with the
/// ticket id and milestone (SES event destinations can then report per ticket). A recipient
/// without an email address is refused with [`NotifyError::NoEmailAddress`] and nothing is sent.
///
/// SES has no idempotency key: a message is sent again when the step is re-run after SES
/// accepted it. The SDK's own retries only repeat attempts SES did not accept.
#[derive(Debug, Clone)]
pub struct SesEmailChannel {
    client: aws_sdk_sesv2::Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesEmailChannel {
    /// `from` is a verified SES identity (`"Shop Support <support@shop.example>"` works too).
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        SesEmailChannel {
            client,
            from: from.into(),
            configuration_set: None,
        }
    }

    /// Sends through this SES configuration set (event publishing, dedicated IPs).
    pub fn with_configuration_set(mut self, name: impl Into<String>) -> Self {
        self.configuration_set = Some(name.into());
        self
    }

    async fn send_email(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let to = msg
            .recipient()
            .email()
            .ok_or(NotifyError::NoEmailAddress { channel: CHANNEL })?;
        let subject = content(msg.subject())?;
        let text = content(msg.body())?;
        let output = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to.as_str()).build())
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(subject)
                            .body(Body::builder().text(text).build())
                            .build(),
                    )
                    .build(),
            )
            .email_tags(tag("ticket_id", msg.ticket_id().as_str())?)
            .email_tags(tag("milestone", msg.milestone().as_str())?)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(send_error)?;
        Ok(Delivery {
            channel: CHANNEL,
            reference: output.message_id().map(str::to_owned),
        })
    }
}

#[async_trait]
impl NotificationChannel for SesEmailChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let outcome = self.send_email(msg).await;
        log_outcome(CHANNEL, msg, &outcome);
        outcome
    }
}

fn content(data: &str) -> Result<Content, NotifyError> {
    Content::builder()
        .data(data)
        .charset(CHARSET)
        .build()
        .map_err(|e| NotifyError::Rejected {
            channel: CHANNEL,
            reason: format!("cannot build the email: {e}"),
        })
}

fn tag(name: &str, value: &str) -> Result<MessageTag, NotifyError> {
    MessageTag::builder()
        .name(name)
        .value(value)
        .build()
        .map_err(|e| NotifyError::Rejected {
            channel: CHANNEL,
            reason: format!("cannot build the email tag {name}: {e}"),
        })
}

/// Only SES's error code goes into the error: its messages may quote the recipient's address.
fn send_error(e: SdkError<SendEmailError>) -> NotifyError {
    let retryable = |reason: String| NotifyError::Retryable {
        channel: CHANNEL,
        reason,
    };
    match e {
        SdkError::TimeoutError(_) => retryable("SES timed out".into()),
        SdkError::DispatchFailure(_) => retryable("cannot reach SES".into()),
        SdkError::ResponseError(_) => retryable("unreadable answer from SES".into()),
        SdkError::ConstructionFailure(_) => NotifyError::Misconfigured {
            channel: CHANNEL,
            reason: "cannot build the SendEmail request (region or credentials?)".into(),
        },
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let error = context.into_err();
            let code = error.code().unwrap_or("unknown").to_owned();
            let reason = format!("SES answered HTTP {status} {code}");
            match error {
                SendEmailError::TooManyRequestsException(_)
                | SendEmailError::LimitExceededException(_) => retryable(reason),
                _ if status == 429 || status >= 500 => retryable(reason),
                SendEmailError::MailFromDomainNotVerifiedException(_)
                | SendEmailError::AccountSuspendedException(_)
                | SendEmailError::SendingPausedException(_)
                | SendEmailError::NotFoundException(_) => NotifyError::Misconfigured {
                    channel: CHANNEL,
                    reason,
                },
                _ => NotifyError::Rejected {
                    channel: CHANNEL,
                    reason,
                },
            }
        }
        _ => retryable("SES call failed".into()),
    }
}

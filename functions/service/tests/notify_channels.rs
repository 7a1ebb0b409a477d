//! Notification channels: the merchant webhook against a local HTTP server (wiremock), the
//! in-memory outbox, fan-out across channels, and what a send writes to the logs.

use std::sync::Arc;
use std::time::Duration;

use aftersales_domain::{CustomerId, Locale, Money, TicketId};
use aftersales_service::adapters::notify::{
    AddressError, Delivery, EmailAddress, FanOut, IdempotencyKey, MerchantWebhookChannel,
    MessageContext, Milestone, NotificationChannel, NotifyError, OutboxChannel, OutgoingMessage,
    Recipient, WebhookTimeouts,
};
use aftersales_service::signature::{WebhookSecret, verify};
use jiff::Timestamp;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TICKET: &str = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB";
const SIGNED_AT: i64 = 1_795_000_000;
const EMAIL: &str = "li.wei@example.com";

fn ticket() -> TicketId {
    TICKET.parse().unwrap()
}

fn secret() -> WebhookSecret {
    WebhookSecret::new("whsec_notify_test").unwrap()
}

fn fixed_clock() -> Timestamp {
    Timestamp::from_second(SIGNED_AT).unwrap()
}

fn recipient() -> Recipient {
    Recipient::new(
        Some(EmailAddress::new(EMAIL).unwrap()),
        Some(CustomerId::new("C-1001").unwrap()),
    )
    .unwrap()
}

fn refund_message(seq: u32) -> OutgoingMessage {
    let ctx = MessageContext {
        first_name: Some("Wei".into()),
        amount: Some(Money::new(60800, "CNY".parse().unwrap())),
        ..MessageContext::new(ticket())
    };
    OutgoingMessage::compose(
        Milestone::RefundIssued,
        seq,
        Locale::ZhCn,
        recipient(),
        &ctx,
    )
    .unwrap()
}

fn webhook(server: &MockServer) -> MerchantWebhookChannel {
    MerchantWebhookChannel::with_timeouts(
        &format!("{}/hooks/notify", server.uri()),
        secret(),
        WebhookTimeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_millis(400),
        },
    )
    .unwrap()
    .with_clock(fixed_clock)
}

async fn answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/notify"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

#[test]
fn idempotency_key_is_ticket_milestone_and_sequence() {
    assert_eq!(
        IdempotencyKey::new(&ticket(), Milestone::DecisionReminder, 2).as_str(),
        "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:decision_reminder:2"
    );
    assert_eq!(
        refund_message(1).idempotency_key().as_str(),
        "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:1"
    );
}

#[test]
fn a_recipient_needs_an_email_or_a_customer_id() {
    assert_eq!(Recipient::new(None, None), Err(AddressError::NoRecipient));
    assert!(Recipient::new(None, Some(CustomerId::new("C-1").unwrap())).is_ok());
}

#[test]
fn malformed_email_addresses_are_refused_without_repeating_them() {
    for bad in [
        "",
        "li.example.com",
        "@example.com",
        "li@",
        "li wei@example.com",
        "a@b.com>",
    ] {
        let err = EmailAddress::new(bad).unwrap_err();
        assert!(matches!(err, AddressError::InvalidEmail(_)), "{bad}");
        assert!(bad.is_empty() || !err.to_string().contains(bad), "{err}");
    }
    assert_eq!(EmailAddress::new(EMAIL).unwrap().as_str(), EMAIL);
}

#[test]
fn debug_output_hides_the_address_and_the_text() {
    let msg = refund_message(1);
    let debug = format!("{msg:?} {:?}", msg.recipient());
    assert!(!debug.contains(EMAIL), "{debug}");
    assert!(!debug.contains(msg.body()), "{debug}");
    assert!(!debug.contains("608.00"), "{debug}");
    assert!(debug.contains("refund_issued:1"), "{debug}");
}

#[tokio::test]
async fn webhook_posts_the_signed_message_with_its_idempotency_key() {
    let server = answering(202).await;
    let msg = refund_message(1);

    let delivery = webhook(&server).send(&msg).await.unwrap();

    assert_eq!(
        delivery,
        Delivery {
            channel: "merchant_webhook",
            reference: None
        }
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        header("Idempotency-Key"),
        "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:1"
    );
    assert_eq!(header("Content-Type"), "application/json");
    let signature = header("X-Aftersales-Signature");
    assert!(signature.starts_with("t=1795000000,v1="), "{signature}");
    assert_eq!(
        verify(Some(&signature), &request.body, &secret(), fixed_clock()),
        Ok(fixed_clock())
    );
    let other = WebhookSecret::new("whsec_someone_else").unwrap();
    assert!(verify(Some(&signature), &request.body, &other, fixed_clock()).is_err());

    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "aftersales.notification",
            "idempotency_key": "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:1",
            "ticket_id": TICKET,
            "milestone": "refund_issued",
            "locale": "zh-CN",
            "recipient": {"customer_id": "C-1001", "email": EMAIL},
            "subject": msg.subject(),
            "body": msg.body(),
        })
    );
    assert!(msg.subject().contains("608.00 CNY"), "{}", msg.subject());
}

#[tokio::test]
async fn webhook_omits_recipient_fields_the_message_does_not_have() {
    let server = answering(200).await;
    let ctx = MessageContext::new(ticket());
    let only_customer = Recipient::new(None, Some(CustomerId::new("C-7").unwrap())).unwrap();
    let msg =
        OutgoingMessage::compose(Milestone::Resolved, 1, Locale::En, only_customer, &ctx).unwrap();

    webhook(&server).send(&msg).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["recipient"], json!({"customer_id": "C-7"}));
}

#[tokio::test]
async fn webhook_server_errors_and_throttling_are_retryable() {
    for status in [500, 502, 503, 429, 408] {
        let server = answering(status).await;
        let err = webhook(&server).send(&refund_message(1)).await.unwrap_err();
        assert_eq!(
            err,
            NotifyError::Retryable {
                channel: "merchant_webhook",
                reason: format!("the webhook answered HTTP {status}"),
            }
        );
    }
}

#[tokio::test]
async fn webhook_client_errors_are_permanent() {
    for status in [400, 401, 404, 410, 422] {
        let server = answering(status).await;
        let err = webhook(&server).send(&refund_message(1)).await.unwrap_err();
        assert_eq!(
            err,
            NotifyError::Rejected {
                channel: "merchant_webhook",
                reason: format!("the webhook answered HTTP {status}"),
            }
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn webhook_timeout_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;

    let err = webhook(&server).send(&refund_message(1)).await.unwrap_err();

    assert_eq!(
        err,
        NotifyError::Retryable {
            channel: "merchant_webhook",
            reason: "timed out".into()
        }
    );
}

#[tokio::test]
async fn webhook_unreachable_is_retryable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let channel =
        MerchantWebhookChannel::new(&format!("http://127.0.0.1:{port}/hook"), secret()).unwrap();

    let err = channel.send(&refund_message(1)).await.unwrap_err();

    assert!(err.is_retryable(), "{err}");
}

#[test]
fn webhook_refuses_plain_http_to_other_hosts() {
    let err = MerchantWebhookChannel::new("http://shop.example/hook", secret()).unwrap_err();
    assert_eq!(
        err,
        NotifyError::Misconfigured {
            channel: "merchant_webhook",
            reason: "the webhook must use https, not http".into()
        }
    );
    assert!(MerchantWebhookChannel::new("https://shop.example/hook", secret()).is_ok());
}

#[tokio::test]
async fn outbox_records_each_idempotency_key_once() {
    let outbox = OutboxChannel::new();
    let first = outbox.send(&refund_message(1)).await.unwrap();
    let repeat = outbox.send(&refund_message(1)).await.unwrap();
    let second = outbox.send(&refund_message(2)).await.unwrap();

    assert_eq!(first.reference.as_deref(), Some("outbox-1"));
    assert_eq!(repeat, first);
    assert_eq!(second.reference.as_deref(), Some("outbox-2"));
    let keys: Vec<String> = outbox
        .for_ticket(&ticket())
        .iter()
        .map(|m| m.idempotency_key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:1",
            "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:notify:refund_issued:2"
        ]
    );
    assert_eq!(outbox.messages()[0], refund_message(1));
}

/// A channel that always fails the same way.
struct Failing(NotifyError);

#[async_trait::async_trait]
impl NotificationChannel for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    async fn send(&self, _: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        Err(self.0.clone())
    }
}

fn rejected() -> NotifyError {
    NotifyError::Rejected {
        channel: "failing",
        reason: "HTTP 400".into(),
    }
}

fn throttled() -> NotifyError {
    NotifyError::Retryable {
        channel: "failing",
        reason: "HTTP 429".into(),
    }
}

#[tokio::test]
async fn fan_out_reports_every_channel_and_a_failure_does_not_stop_the_others() {
    let outbox = OutboxChannel::new();
    let fan_out = FanOut::default()
        .with(Arc::new(Failing(rejected())))
        .with(Arc::new(outbox.clone()));

    let report = fan_out.send(&refund_message(1)).await;

    assert_eq!(report.outcomes.len(), 2);
    assert_eq!(report.outcomes[0].channel, "failing");
    assert_eq!(report.outcomes[0].result, Err(rejected()));
    assert_eq!(report.outcomes[1].channel, "outbox");
    assert_eq!(outbox.messages().len(), 1);
    assert_eq!(
        report.into_result(),
        Ok(vec![Delivery {
            channel: "outbox",
            reference: Some("outbox-1".into())
        }])
    );
}

#[tokio::test]
async fn fan_out_asks_for_a_retry_when_any_channel_can_still_succeed() {
    let fan_out = FanOut::new(vec![
        Arc::new(OutboxChannel::new()),
        Arc::new(Failing(throttled())),
    ]);
    assert_eq!(
        fan_out.send(&refund_message(1)).await.into_result(),
        Err(throttled())
    );
}

#[tokio::test]
async fn fan_out_fails_with_the_first_error_when_nothing_was_delivered() {
    let fan_out = FanOut::new(vec![Arc::new(Failing(rejected()))]);
    assert_eq!(
        fan_out.send(&refund_message(1)).await.into_result(),
        Err(rejected())
    );
    assert!(matches!(
        FanOut::default()
            .send(&refund_message(1))
            .await
            .into_result(),
        Err(NotifyError::Misconfigured { .. })
    ));
}

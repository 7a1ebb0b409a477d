//! What a send writes to the logs: ids, never an address, a name or the text.
//!
//! Alone in its test binary: tracing caches per-callsite interest process-wide, so events of
//! tests running in parallel without a subscriber could hide this test's events.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aftersales_domain::{CustomerId, Locale, Money, TicketId};
use aftersales_service::adapters::notify::{
    EmailAddress, FanOut, MerchantWebhookChannel, MessageContext, Milestone, OutboxChannel,
    OutgoingMessage, Recipient, SesEmailChannel, WebhookTimeouts,
};
use aftersales_service::signature::WebhookSecret;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TICKET: &str = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB";
const EMAIL: &str = "li.wei@example.com";

fn refund_message() -> OutgoingMessage {
    let ctx = MessageContext {
        first_name: Some("Wei".into()),
        amount: Some(Money::new(60800, "CNY".parse().unwrap())),
        ..MessageContext::new(TICKET.parse::<TicketId>().unwrap())
    };
    let recipient = Recipient::new(
        Some(EmailAddress::new(EMAIL).unwrap()),
        Some(CustomerId::new("C-1001").unwrap()),
    )
    .unwrap();
    OutgoingMessage::compose(Milestone::RefundIssued, 1, Locale::ZhCn, recipient, &ctx).unwrap()
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

fn webhook(server: &MockServer) -> MerchantWebhookChannel {
    MerchantWebhookChannel::with_timeouts(
        &format!("{}/hooks/notify", server.uri()),
        WebhookSecret::new("whsec_notify_test").unwrap(),
        WebhookTimeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(2),
        },
    )
    .unwrap()
}

/// Collects everything the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn ses_client(endpoint: &str) -> aws_sdk_sesv2::Client {
    use aws_sdk_sesv2::config::retry::RetryConfig;
    use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        // The functions' HTTPS client (the SDKs are built without a default one).
        .http_client(aftersales_service::runtime::tls::aws_https_client(None))
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

#[tokio::test]
async fn sends_log_ids_but_never_the_address_name_or_text() {
    let webhook_server = answering(503).await;
    let ses_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-amzn-ErrorType", "MessageRejected")
                .set_body_json(json!({
                    "message": format!("Email address is not verified: {EMAIL}")
                })),
        )
        .mount(&ses_server)
        .await;
    let captured = Captured::default();
    let writer = captured.clone();
    // DEBUG for every crate, the most a deployed function logs: the AWS SDK's TRACE level
    // dumps raw HTTP responses (SES errors quote addresses) and must stay off in production.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let msg = refund_message();
    let fan_out = FanOut::default()
        .with(Arc::new(webhook(&webhook_server)))
        .with(Arc::new(SesEmailChannel::new(
            ses_client(&ses_server.uri()),
            "support@shop.example",
        )))
        .with(Arc::new(OutboxChannel::new()));
    let report = fan_out.send(&msg).await;

    let logs = captured.text();
    assert_eq!(report.deliveries().len(), 1, "{report:?}");
    assert!(logs.contains("notification delivered"), "{logs}");
    assert!(logs.contains("notification not delivered"), "{logs}");
    assert!(logs.contains("the webhook answered HTTP 503"), "{logs}");
    assert!(
        logs.contains("SES answered HTTP 400 MessageRejected"),
        "{logs}"
    );
    assert!(logs.contains(TICKET), "{logs}");
    assert!(logs.contains("refund_issued"), "{logs}");
    for secret in [
        EMAIL,
        "li.wei",
        "Wei",
        msg.subject(),
        msg.body(),
        "608.00",
        "C-1001",
    ] {
        assert!(!logs.contains(secret), "logs contain {secret:?}:\n{logs}");
    }
    for error in report.failures() {
        assert!(!error.to_string().contains(EMAIL), "{error}");
    }
}

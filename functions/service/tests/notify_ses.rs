//! The SES email channel through the real `aws-sdk-sesv2` client, against a local HTTP server
//! (wiremock) standing in for the SES v2 endpoint.

use aftersales_domain::{CustomerId, Locale, Money, TicketId};
use aftersales_service::adapters::notify::{
    Delivery, EmailAddress, MessageContext, Milestone, NotificationChannel, NotifyError,
    OutgoingMessage, Recipient, SesEmailChannel,
};
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TICKET: &str = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB";
const EMAIL: &str = "li.wei@example.com";
const FROM: &str = "Shop Support <support@shop.example>";
const SEND_EMAIL: &str = "/v2/email/outbound-emails";

fn client(server: &MockServer) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        // The functions' HTTPS client (the SDKs are built without a default one).
        .http_client(aftersales_service::runtime::tls::aws_https_client(None))
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(server.uri())
        // One attempt per send, so each test sees exactly the answer it set up.
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

fn message(email: Option<&str>) -> OutgoingMessage {
    let ticket_id: TicketId = TICKET.parse().unwrap();
    let ctx = MessageContext {
        amount: Some(Money::new(60800, "CNY".parse().unwrap())),
        ..MessageContext::new(ticket_id)
    };
    let recipient = Recipient::new(
        email.map(|e| EmailAddress::new(e).unwrap()),
        Some(CustomerId::new("C-1001").unwrap()),
    )
    .unwrap();
    OutgoingMessage::compose(Milestone::RefundIssued, 1, Locale::ZhCn, recipient, &ctx).unwrap()
}

async fn ses_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEND_EMAIL))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn ses_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-amzn-ErrorType", code)
        .insert_header("content-type", "application/json")
        .set_body_json(json!({ "message": message }))
}

#[tokio::test]
async fn sends_a_utf8_text_email_with_subject_tags_and_configuration_set() {
    let server =
        ses_answering(ResponseTemplate::new(200).set_body_json(json!({"MessageId": "msg-0001"})))
            .await;
    let channel = SesEmailChannel::new(client(&server), FROM).with_configuration_set("aftersales");
    let msg = message(Some(EMAIL));

    let delivery = channel.send(&msg).await.unwrap();

    assert_eq!(
        delivery,
        Delivery {
            channel: "ses_email",
            reference: Some("msg-0001".into())
        }
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), SEND_EMAIL);
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["FromEmailAddress"], FROM);
    assert_eq!(body["Destination"], json!({"ToAddresses": [EMAIL]}));
    assert_eq!(body["ConfigurationSetName"], "aftersales");
    assert_eq!(
        body["Content"],
        json!({"Simple": {
            "Subject": {"Data": msg.subject(), "Charset": "UTF-8"},
            "Body": {"Text": {"Data": msg.body(), "Charset": "UTF-8"}}
        }})
    );
    assert_eq!(
        body["EmailTags"],
        json!([
            {"Name": "ticket_id", "Value": TICKET},
            {"Name": "milestone", "Value": "refund_issued"}
        ])
    );
    assert_eq!(
        msg.subject(),
        "退款 608.00 CNY 已发起（工单号 tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB）"
    );
}

#[tokio::test]
async fn without_a_configuration_set_none_is_sent() {
    let server =
        ses_answering(ResponseTemplate::new(200).set_body_json(json!({"MessageId": "msg-2"})))
            .await;
    SesEmailChannel::new(client(&server), FROM)
        .send(&message(Some(EMAIL)))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body.get("ConfigurationSetName"), None);
}

#[tokio::test]
async fn a_recipient_without_email_is_skipped_and_nothing_is_sent() {
    let server = ses_answering(ResponseTemplate::new(200)).await;

    let err = SesEmailChannel::new(client(&server), FROM)
        .send(&message(None))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        NotifyError::NoEmailAddress {
            channel: "ses_email"
        }
    );
    assert_eq!(
        err.to_string(),
        "ses_email: the recipient has no email address; nothing was sent"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rejected_message_is_permanent_and_the_error_does_not_quote_the_address() {
    let server = ses_answering(ses_error(
        400,
        "MessageRejected",
        &format!("Email address is not verified: {EMAIL}"),
    ))
    .await;

    let err = SesEmailChannel::new(client(&server), FROM)
        .send(&message(Some(EMAIL)))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        NotifyError::Rejected {
            channel: "ses_email",
            reason: "SES answered HTTP 400 MessageRejected".into()
        }
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable() {
    for (status, code) in [
        (429, "TooManyRequestsException"),
        (400, "LimitExceededException"),
        (500, "InternalFailure"),
        (503, "ServiceUnavailable"),
    ] {
        let server = ses_answering(ses_error(status, code, "slow down")).await;
        let err = SesEmailChannel::new(client(&server), FROM)
            .send(&message(Some(EMAIL)))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            NotifyError::Retryable {
                channel: "ses_email",
                reason: format!("SES answered HTTP {status} {code}")
            }
        );
    }
}

#[tokio::test]
async fn an_unverified_sender_is_a_configuration_problem() {
    let server = ses_answering(ses_error(
        400,
        "MailFromDomainNotVerifiedException",
        "not verified",
    ))
    .await;
    let err = SesEmailChannel::new(client(&server), FROM)
        .send(&message(Some(EMAIL)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NotifyError::Misconfigured {
            channel: "ses_email",
            reason: "SES answered HTTP 400 MailFromDomainNotVerifiedException".into()
        }
    );
}

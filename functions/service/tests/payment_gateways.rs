//! The payment gateways against a local HTTP server (wiremock): what they send, and how they
//! read each kind of answer.

use std::time::Duration;

use aftersales_domain::{Money, PaymentReference, ProblemKind, TicketId};
use aftersales_service::adapters::payment::{
    HttpTimeouts, MerchantEndpointGateway, PaymentError, PaymentGateway, RefundReceipt,
    RefundRequest, RefundStatus, StripeApiKey, StripeGateway, http_client,
};
use aftersales_service::signature::{WebhookSecret, verify};
use jiff::Timestamp;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TICKET: &str = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB";
const KEY: &str = "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB:execute-refund";
const SIGNED_AT: i64 = 1_795_000_000;
const STRIPE_KEY: &str = "sk_test_51Habcdefghijklmnop";

fn refund_request(reference: &str, minor: i64, currency: &str) -> RefundRequest {
    let ticket_id: TicketId = TICKET.parse().unwrap();
    RefundRequest {
        idempotency_key: RefundRequest::idempotency_key(&ticket_id, "execute-refund"),
        payment_reference: PaymentReference::new(reference).unwrap(),
        amount: Money::new(minor, currency.parse().unwrap()),
        reason: ProblemKind::DamagedInTransit,
        ticket_id,
    }
}

fn client() -> reqwest::Client {
    http_client(HttpTimeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_millis(500),
    })
    .unwrap()
}

fn secret() -> WebhookSecret {
    WebhookSecret::new("whsec_merchant_test").unwrap()
}

fn fixed_clock() -> Timestamp {
    Timestamp::from_second(SIGNED_AT).unwrap()
}

async fn merchant_gateway(server: &MockServer) -> MerchantEndpointGateway {
    MerchantEndpointGateway::new(client(), &format!("{}/refunds", server.uri()), secret())
        .unwrap()
        .with_clock(fixed_clock)
}

async fn stripe_gateway(server: &MockServer) -> StripeGateway {
    StripeGateway::new(client(), StripeApiKey::new(STRIPE_KEY).unwrap())
        .with_base_url(&server.uri())
        .unwrap()
}

async fn answer(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
}

async fn only_request(server: &MockServer) -> wiremock::Request {
    let mut requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    requests.remove(0)
}

fn header<'a>(request: &'a wiremock::Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Decodes an `application/x-www-form-urlencoded` body into its (name, value) pairs.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- merchant refund endpoint ----

#[tokio::test]
async fn merchant_refund_posts_signed_json_with_the_idempotency_key_and_returns_the_receipt() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/refunds",
        ResponseTemplate::new(201).set_body_json(json!({
            "refund_id": "rf_1001", "amount": 29900, "currency": "CNY",
            "status": "succeeded", "created_at": "2026-11-20T09:30:00Z"
        })),
    )
    .await;

    let receipt = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap();

    assert_eq!(
        receipt,
        RefundReceipt {
            provider_refund_id: "rf_1001".into(),
            amount: Money::new(29900, "CNY".parse().unwrap()),
            status: RefundStatus::Succeeded,
            created_at: "2026-11-20T09:30:00Z".parse().unwrap(),
        }
    );
    let request = only_request(&server).await;
    assert_eq!(header(&request, "idempotency-key"), KEY);
    assert_eq!(header(&request, "content-type"), "application/json");
    let signature = header(&request, "x-aftersales-signature");
    assert!(signature.starts_with("t=1795000000,v1="), "{signature}");
    assert_eq!(
        verify(Some(signature), &request.body, &secret(), fixed_clock()),
        Ok(fixed_clock())
    );
    assert_eq!(
        request.body_json::<serde_json::Value>().unwrap(),
        json!({
            "idempotency_key": KEY,
            "ticket_id": TICKET,
            "payment_reference": "pi_3Nabc",
            "amount": 29900,
            "currency": "CNY",
            "reason": "damaged_in_transit"
        })
    );
}

#[tokio::test]
async fn merchant_refund_signature_does_not_verify_with_another_secret() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/refunds",
        ResponseTemplate::new(200).set_body_json(json!({
            "refund_id": "rf_1", "amount": 100, "currency": "CNY",
            "status": "pending", "created_at": "2026-11-20T09:30:00Z"
        })),
    )
    .await;
    let receipt = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 100, "CNY"))
        .await
        .unwrap();
    assert_eq!(receipt.status, RefundStatus::Pending);

    let request = only_request(&server).await;
    let other = WebhookSecret::new("whsec_someone_else").unwrap();
    assert!(
        verify(
            Some(header(&request, "x-aftersales-signature")),
            &request.body,
            &other,
            fixed_clock()
        )
        .is_err()
    );
}

#[tokio::test]
async fn merchant_decline_with_the_error_body_is_a_declined_refund() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/refunds",
        ResponseTemplate::new(409).set_body_json(json!({
            "error": {"code": "charge_already_refunded", "message": "Charge pi_3Nabc was already refunded."}
        })),
    )
    .await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Declined {
            code: "charge_already_refunded".into(),
            message: "Charge pi_3Nabc was already refunded.".into(),
        }
    );
}

#[tokio::test]
async fn merchant_5xx_is_transient() {
    let server = MockServer::start().await;
    answer(&server, "/refunds", ResponseTemplate::new(503)).await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Transient {
            message: "the refund endpoint answered 503 Service Unavailable (http_503)".into()
        }
    );
}

#[tokio::test]
async fn merchant_429_is_transient() {
    let server = MockServer::start().await;
    answer(&server, "/refunds", ResponseTemplate::new(429)).await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Transient {
            message: "the refund endpoint answered 429 Too Many Requests (http_429)".into()
        }
    );
}

#[tokio::test]
async fn merchant_endpoint_that_does_not_answer_in_time_is_transient() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/refunds",
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
    )
    .await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    match error {
        PaymentError::Transient { message } => {
            assert!(message.starts_with("timed out"), "{message}")
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn merchant_401_is_misconfigured() {
    let server = MockServer::start().await;
    answer(&server, "/refunds", ResponseTemplate::new(401)).await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Misconfigured {
            message: "the refund endpoint answered 401 Unauthorized (http_401)".into()
        }
    );
}

#[tokio::test]
async fn merchant_receipt_in_another_currency_is_an_unexpected_response() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/refunds",
        ResponseTemplate::new(200).set_body_json(json!({
            "refund_id": "rf_9", "amount": 29900, "currency": "USD",
            "status": "succeeded", "created_at": "2026-11-20T09:30:00Z"
        })),
    )
    .await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::UnexpectedResponse {
            message: "refund rf_9 was made in USD, but CNY was requested".into()
        }
    );
}

#[tokio::test]
async fn a_non_positive_amount_is_declined_without_calling_the_gateway() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;

    let error = merchant_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 0, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Declined {
            code: "invalid_amount".into(),
            message: "a refund must be positive, got 0.00 CNY".into(),
        }
    );
}

// ---- Stripe ----

fn stripe_refund(amount: i64, currency: &str, status: &str) -> serde_json::Value {
    json!({
        "id": "re_3Nxyz", "object": "refund", "amount": amount, "currency": currency,
        "status": status, "created": 1_795_000_123, "payment_intent": "pi_3Nabc",
        "metadata": {"ticket_id": TICKET}
    })
}

#[tokio::test]
async fn stripe_refund_of_a_payment_intent_posts_the_documented_form_and_returns_the_receipt() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(200).set_body_json(stripe_refund(29900, "cny", "succeeded")),
    )
    .await;

    let receipt = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap();

    assert_eq!(
        receipt,
        RefundReceipt {
            provider_refund_id: "re_3Nxyz".into(),
            amount: Money::new(29900, "CNY".parse().unwrap()),
            status: RefundStatus::Succeeded,
            created_at: Timestamp::from_second(1_795_000_123).unwrap(),
        }
    );
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "authorization"),
        format!("Bearer {STRIPE_KEY}")
    );
    assert_eq!(header(&request, "idempotency-key"), KEY);
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        form_fields(&request.body),
        pairs(&[
            ("payment_intent", "pi_3Nabc"),
            ("amount", "29900"),
            ("reason", "requested_by_customer"),
            ("metadata[ticket_id]", TICKET),
            ("metadata[problem_kind]", "damaged_in_transit"),
        ])
    );
}

#[tokio::test]
async fn stripe_refund_of_a_charge_sends_the_charge_and_stripe_units() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(200).set_body_json(stripe_refund(15000, "isk", "pending")),
    )
    .await;

    let receipt = stripe_gateway(&server)
        .await
        .refund(&refund_request("ch_1Nabc", 150, "ISK"))
        .await
        .unwrap();

    assert_eq!(receipt.amount, Money::new(150, "ISK".parse().unwrap()));
    assert_eq!(receipt.status, RefundStatus::Pending);
    let fields = form_fields(&only_request(&server).await.body);
    assert_eq!(fields[0], ("charge".to_string(), "ch_1Nabc".to_string()));
    assert_eq!(fields[1], ("amount".to_string(), "15000".to_string()));
    assert!(!fields.iter().any(|(k, _)| k == "payment_intent"));
}

#[tokio::test]
async fn stripe_already_refunded_is_declined() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "charge_already_refunded",
            "message": "Charge ch_1Nabc has already been refunded."
        }})),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("ch_1Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Declined {
            code: "charge_already_refunded".into(),
            message: "Charge ch_1Nabc has already been refunded.".into(),
        }
    );
}

#[tokio::test]
async fn stripe_card_error_is_declined_with_its_decline_code() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(402).set_body_json(json!({"error": {
            "type": "card_error", "code": "card_declined", "decline_code": "expired_card",
            "message": "Your card has expired."
        }})),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Declined {
            code: "expired_card".into(),
            message: "Your card has expired.".into(),
        }
    );
}

#[tokio::test]
async fn stripe_api_error_5xx_is_transient() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(500).set_body_json(json!({"error": {
            "type": "api_error", "message": "Something went wrong on Stripe's end."
        }})),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Transient {
            message: "Stripe answered 500 Internal Server Error (api_error): Something went wrong on Stripe's end.".into()
        }
    );
}

#[tokio::test]
async fn stripe_rate_limit_is_transient() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(429).set_body_json(json!({"error": {
            "type": "rate_limit_error", "code": "rate_limit", "message": "Too many requests."
        }})),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Transient {
            message: "Stripe answered 429 Too Many Requests (rate_limit): Too many requests."
                .into()
        }
    );
}

#[tokio::test]
async fn stripe_should_retry_header_makes_a_conflict_transient() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(409)
            .insert_header("Stripe-Should-Retry", "true")
            .set_body_json(json!({"error": {
                "type": "invalid_request_error", "code": "lock_timeout",
                "message": "This object cannot be accessed right now."
            }})),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, PaymentError::Transient { message } if message.starts_with("Stripe answered 409 Conflict (lock_timeout)")),
        "{error:?}"
    );
}

#[tokio::test]
async fn stripe_that_does_not_answer_in_time_is_transient() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(200)
            .set_body_json(stripe_refund(29900, "cny", "succeeded"))
            .set_delay(Duration::from_secs(3)),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    match error {
        PaymentError::Transient { message } => {
            assert!(message.starts_with("timed out"), "{message}")
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn stripe_authentication_error_is_misconfigured_and_never_echoes_the_key() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "type": "authentication_error",
            "message": format!("Invalid API Key provided: {STRIPE_KEY}")
        }})),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Misconfigured {
            message: "Stripe refused the API key (401 Unauthorized, authentication_error)".into()
        }
    );
    assert!(!format!("{error} {error:?}").contains(STRIPE_KEY));
}

#[tokio::test]
async fn stripe_refund_in_another_currency_is_an_unexpected_response() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(200).set_body_json(stripe_refund(29900, "usd", "succeeded")),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::UnexpectedResponse {
            message: "refund re_3Nxyz was made in USD, but CNY was requested".into()
        }
    );
}

#[tokio::test]
async fn stripe_refund_that_failed_at_once_is_declined_with_the_failure_reason() {
    let server = MockServer::start().await;
    let mut body = stripe_refund(29900, "cny", "failed");
    body["failure_reason"] = json!("expired_or_canceled_card");
    answer(
        &server,
        "/v1/refunds",
        ResponseTemplate::new(200).set_body_json(body),
    )
    .await;

    let error = stripe_gateway(&server)
        .await
        .refund(&refund_request("pi_3Nabc", 29900, "CNY"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        PaymentError::Declined {
            code: "expired_or_canceled_card".into(),
            message: "Stripe refund re_3Nxyz failed".into(),
        }
    );
}

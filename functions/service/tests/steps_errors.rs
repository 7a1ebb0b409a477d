//! The error names the workflow's `ErrorEquals` matches, and how adapter errors map onto them.

use aftersales_domain::Money;
use aftersales_service::adapters::feedback::PublishError;
use aftersales_service::adapters::payment::PaymentError;
use aftersales_service::handlers::steps::StepError;
use aftersales_service::handlers::steps::diagnose::DiagnoseInput;
use aftersales_service::handlers::steps::parse_input;
use aftersales_service::store::StoreError;
use lambda_runtime::Diagnostic;
use serde_json::json;

fn error_type(error: StepError) -> String {
    Diagnostic::from(error).error_type
}

#[test]
fn every_variant_reports_its_stable_name_as_the_lambda_error_type() {
    let cases = [
        (StepError::Retryable("x".into()), "Retryable"),
        (StepError::PaymentDeclined("x".into()), "PaymentDeclined"),
        (StepError::PolicyViolation("x".into()), "PolicyViolation"),
        (StepError::AlreadyAnswered("x".into()), "AlreadyAnswered"),
        (StepError::NotFound("x".into()), "NotFound"),
        (StepError::Conflict("x".into()), "Conflict"),
        (StepError::InvalidInput("x".into()), "InvalidInput"),
    ];
    for (error, name) in cases {
        assert_eq!(error_type(error), name);
    }
    assert_eq!(StepError::NAMES.len(), 7);
}

#[test]
fn the_error_message_is_the_message_alone() {
    let diagnostic = Diagnostic::from(StepError::NotFound("ticket tkt_1 does not exist".into()));
    assert_eq!(diagnostic.error_message, "ticket tkt_1 does not exist");
    assert!(!diagnostic.error_type.contains("Box"));
}

#[test]
fn store_errors_map_to_what_the_workflow_can_do() {
    let cny = "CNY".parse().unwrap();
    let cases = [
        (StoreError::Conflict("v".into()), "Conflict"),
        (StoreError::NotFound("t".into()), "NotFound"),
        (
            StoreError::CapExceeded {
                requested: Money::new(2, cny),
                available: Money::new(1, cny),
            },
            "PolicyViolation",
        ),
        (StoreError::Unavailable("throttled".into()), "Retryable"),
        (StoreError::Corrupt("bad item".into()), "InvalidInput"),
    ];
    for (error, name) in cases {
        assert_eq!(StepError::from(error).name(), name);
    }
}

#[test]
fn payment_errors_retry_only_transient_failures() {
    let transient = PaymentError::Transient {
        message: "503".into(),
    };
    let declined = PaymentError::Declined {
        code: "charge_already_refunded".into(),
        message: "the customer's card ****".into(),
    };
    let misconfigured = PaymentError::Misconfigured {
        message: "401".into(),
    };
    let unexpected = PaymentError::UnexpectedResponse {
        message: "not JSON".into(),
    };
    assert_eq!(StepError::from(transient).name(), "Retryable");
    let declined = StepError::from(declined);
    assert_eq!(declined.name(), "PaymentDeclined");
    assert!(
        !declined.to_string().contains("card"),
        "provider text stays out: {declined}"
    );
    assert_eq!(StepError::from(misconfigured).name(), "PaymentDeclined");
    assert_eq!(StepError::from(unexpected).name(), "PaymentDeclined");
}

#[test]
fn undelivered_feedback_is_retryable() {
    let error = PublishError::Undelivered {
        undelivered: Vec::new(),
    };
    assert_eq!(StepError::from(error).name(), "Retryable");
}

#[test]
fn a_malformed_step_input_is_invalid_input_naming_the_field() {
    let error = parse_input::<DiagnoseInput>(json!({"ticket_id": "tkt_01JD", "extra": 1}))
        .expect_err("unknown field");
    assert_eq!(error.name(), "InvalidInput");

    let error =
        parse_input::<DiagnoseInput>(json!({"ticket_id": "not-a-ticket"})).expect_err("bad id");
    assert_eq!(error.name(), "InvalidInput");
    assert!(error.to_string().contains("ticket_id"), "{error}");
}

//! `parse_request`: every rejection names the field at fault in the API's notation and says why.

use aftersales_domain::request::{ErrorCode, RequestError};
use aftersales_domain::{CustomerTier, ServiceRequest, parse_request};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/requests/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The three-line order every test starts from: L1 2 × 14.50, L2 1 × 129.00, L3 3 × 4.50,
/// shipping 5.99, paid 163.49 USD; the problem names L1 ×1 and L3 ×1.
fn given_a_valid_request() -> Value {
    fixture("valid/three_lines.json")
}

/// The base request with one edit applied.
fn given(edit: impl FnOnce(&mut Value)) -> Value {
    let mut request = given_a_valid_request();
    edit(&mut request);
    request
}

fn remove(object: &mut Value, key: &str) {
    object
        .as_object_mut()
        .expect("an object")
        .remove(key)
        .expect("the key to remove is present");
}

fn parse(request: &Value) -> Result<ServiceRequest, RequestError> {
    parse_request(&serde_json::to_vec(request).expect("serialisable"))
}

fn rejected(request: &Value) -> RequestError {
    match parse(request) {
        Ok(_) => panic!("expected a rejection, but it parsed"),
        Err(e) => e,
    }
}

fn rejected_body(body: &str) -> RequestError {
    match parse_request(body.as_bytes()) {
        Ok(_) => panic!("expected a rejection of {body:?}, but it parsed"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_invalid_field(err: &RequestError, field: &str, words: &[&str]) {
    assert_eq!(err.code, ErrorCode::InvalidField, "{err}");
    assert_eq!(err.field.as_deref(), Some(field), "{err}");
    for word in words {
        assert!(
            err.message.contains(word),
            "message {:?} should mention {word:?}",
            err.message
        );
    }
}

#[track_caller]
fn assert_invalid_json(err: &RequestError, words: &[&str]) {
    assert_eq!(err.code, ErrorCode::InvalidJson, "{err}");
    assert_eq!(err.field, None, "{err}");
    for word in words {
        assert!(
            err.message.contains(word),
            "message {:?} should mention {word:?}",
            err.message
        );
    }
}

mod accepted {
    use super::*;

    #[test]
    fn a_valid_request_parses_with_its_timestamps_in_utc() {
        let request = parse(&given_a_valid_request()).expect("valid");
        assert_eq!(request.submitted_at.to_string(), "2026-11-20T09:30:00Z");
        assert_eq!(request.order.placed_at.to_string(), "2026-11-02T13:15:00Z");
        assert_eq!(
            request.order.delivered_at.map(|t| t.to_string()),
            Some("2026-11-06T19:02:11.25Z".to_owned())
        );
        assert_eq!(request.order.lines.len(), 3);
        assert_eq!(request.problem.lines[1].quantity.get(), 1);
    }

    #[test]
    fn optional_fields_may_be_left_out_and_take_their_defaults() {
        let request = given(|r| {
            for key in ["name", "email", "phone", "tier"] {
                remove(&mut r["customer"], key);
            }
            remove(&mut r["order"], "delivered_at");
            remove(&mut r["order"], "shipping_paid");
            remove(&mut r["order"]["lines"][1], "final_sale");
            remove(&mut r["problem"], "description");
            remove(&mut r["problem"], "evidence");
            remove(r, "expected_resolution");
            r["order"]["payment"]["paid"] = json!(16000);
        });
        let parsed = parse(&request).expect("valid without optional fields");
        assert_eq!(parsed.customer.tier, CustomerTier::Standard);
        assert_eq!(parsed.order.shipping_paid.minor(), 0);
        assert!(parsed.problem.evidence.is_empty());
        assert_eq!(parsed.expected_resolution, None);
    }

    #[test]
    fn null_optional_contact_fields_and_delivery_time_count_as_absent() {
        let request = given(|r| {
            r["customer"]["email"] = Value::Null;
            r["customer"]["phone"] = Value::Null;
            r["order"]["delivered_at"] = Value::Null;
        });
        let parsed = parse(&request).expect("nulls are accepted for optional fields");
        assert_eq!(parsed.customer.email, None);
        assert_eq!(parsed.order.delivered_at, None);
    }

    #[test]
    fn a_discounted_payment_below_the_order_total_is_accepted() {
        let request = given(|r| r["order"]["payment"]["paid"] = json!(1));
        assert!(parse(&request).is_ok());
    }

    #[test]
    fn a_payment_of_exactly_the_order_total_is_accepted() {
        let request = given(|r| r["order"]["payment"]["paid"] = json!(17749));
        assert!(parse(&request).is_ok());
    }

    #[test]
    fn an_order_of_free_items_may_have_been_paid_nothing() {
        let request = given(|r| {
            for line in r["order"]["lines"].as_array_mut().expect("lines") {
                line["unit_price"] = json!(0);
            }
            r["order"]["shipping_paid"] = json!(0);
            r["order"]["payment"]["paid"] = json!(0);
        });
        assert!(parse(&request).is_ok());
    }

    #[test]
    fn texts_at_their_limits_are_accepted_counting_characters_not_bytes() {
        let request = given(|r| {
            r["problem"]["description"] = json!("坏".repeat(4000));
            r["order"]["lines"][0]["title"] = json!("杯".repeat(500));
        });
        assert!(parse(&request).is_ok());
    }

    #[test]
    fn the_whole_quantity_ordered_may_be_affected() {
        let request = given(|r| r["problem"]["lines"][1]["quantity"] = json!(3));
        assert!(parse(&request).is_ok());
    }

    #[test]
    fn submission_at_the_very_moment_of_the_order_is_accepted() {
        let request = given(|r| {
            r["submitted_at"] = json!("2026-11-02T13:15:00Z");
            r["order"]["delivered_at"] = json!("2026-11-02T08:15:00-05:00");
        });
        assert!(parse(&request).is_ok());
    }
}

mod body {
    use super::*;

    #[test]
    fn malformed_json_is_invalid_json_without_a_field() {
        let err = rejected_body(r#"{"request_id": "evt_1", "channel": }"#);
        assert_invalid_json(&err, &["not valid JSON"]);
    }

    #[test]
    fn an_empty_body_is_invalid_json() {
        assert_invalid_json(&rejected_body(""), &["not valid JSON"]);
    }

    #[test]
    fn a_truncated_body_is_invalid_json() {
        let full = serde_json::to_string(&given_a_valid_request()).expect("serialisable");
        let err = rejected_body(&full[..full.len() / 2]);
        assert_invalid_json(&err, &["not valid JSON"]);
    }

    #[test]
    fn content_after_the_object_is_invalid_json() {
        let full = serde_json::to_string(&given_a_valid_request()).expect("serialisable");
        let err = rejected_body(&format!("{full} {{}}"));
        assert_invalid_json(&err, &["not valid JSON"]);
    }

    #[test]
    fn malformed_json_is_invalid_json_even_after_a_field_of_the_wrong_value() {
        let err = rejected_body(r#"{"request_id": "", "channel": "web""#);
        assert_invalid_json(&err, &["not valid JSON"]);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_invalid_json() {
        for (body, what) in [
            ("[]", "an array"),
            (r#""evt_1""#, "a string"),
            ("42", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
        ] {
            let err = rejected_body(body);
            assert_invalid_json(&err, &["must be a JSON object", what]);
        }
    }
}

mod field_types {
    use super::*;

    #[test]
    fn a_missing_field_is_named_itself_not_its_parent() {
        let err = rejected(&given(|r| remove(&mut r["order"], "currency")));
        assert_invalid_field(&err, "order.currency", &["is required"]);
    }

    #[test]
    fn a_missing_top_level_field_is_named_without_a_prefix() {
        let err = rejected(&given(|r| remove(r, "request_id")));
        assert_invalid_field(&err, "request_id", &["is required"]);
    }

    #[test]
    fn a_missing_field_of_a_line_names_the_line() {
        let err = rejected(&given(|r| remove(&mut r["order"]["lines"][1], "sku")));
        assert_invalid_field(&err, "order.lines[1].sku", &["is required"]);
    }

    #[test]
    fn an_unknown_field_is_named_and_the_known_ones_listed() {
        let err = rejected(&given(|r| r["order"]["lines"][1]["colour"] = json!("pink")));
        assert_invalid_field(
            &err,
            "order.lines[1].colour",
            &["is not a known field", "unit_price"],
        );
    }

    #[test]
    fn an_unknown_top_level_field_is_rejected() {
        let err = rejected(&given(|r| r["priority"] = json!("high")));
        assert_invalid_field(&err, "priority", &["is not a known field"]);
    }

    #[test]
    fn an_unknown_field_with_an_odd_name_is_quoted_in_the_path() {
        let err = rejected(&given(|r| r["customer"]["first name"] = json!("x")));
        assert_invalid_field(&err, r#"customer["first name"]"#, &["is not a known field"]);
    }

    #[test]
    fn a_field_given_twice_is_rejected() {
        let body = serde_json::to_string(&given_a_valid_request())
            .expect("serialisable")
            .replacen(
                r#""channel":"app""#,
                r#""channel":"app","channel":"web""#,
                1,
            );
        let err = rejected_body(&body);
        assert_invalid_field(&err, "channel", &["more than once"]);
    }

    #[test]
    fn an_unknown_channel_is_rejected_listing_the_accepted_values() {
        let err = rejected(&given(|r| r["channel"] = json!("teleport")));
        assert_invalid_field(
            &err,
            "channel",
            &[
                "unknown value 'teleport'",
                "expected one of: web, app, hotline, chat, email, social",
            ],
        );
    }

    #[test]
    fn an_unknown_locale_is_rejected_listing_the_accepted_values() {
        let err = rejected(&given(|r| r["customer"]["locale"] = json!("fr")));
        assert_invalid_field(&err, "customer.locale", &["'fr'", "zh-CN, en"]);
    }

    #[test]
    fn an_unknown_evidence_kind_names_the_evidence_item() {
        let err = rejected(&given(|r| {
            r["problem"]["evidence"][0]["kind"] = json!("hologram");
        }));
        assert_invalid_field(
            &err,
            "problem.evidence[0].kind",
            &["'hologram'", "photo, video, document"],
        );
    }

    #[test]
    fn an_unknown_problem_kind_and_resolution_are_rejected() {
        let err = rejected(&given(|r| r["problem"]["kind"] = json!("broken")));
        assert_invalid_field(&err, "problem.kind", &["'broken'", "damaged_in_transit"]);
        let err = rejected(&given(|r| r["expected_resolution"] = json!("money_back")));
        assert_invalid_field(&err, "expected_resolution", &["'money_back'", "refund"]);
    }

    #[test]
    fn an_enum_given_as_a_number_lists_the_accepted_values() {
        let err = rejected(&given(|r| r["customer"]["tier"] = json!(3)));
        assert_invalid_field(&err, "customer.tier", &["standard, silver, gold, vip"]);
        let err = rejected(&given(|r| {
            r["problem"]["evidence"][0]["kind"] = json!(["photo"])
        }));
        assert_invalid_field(
            &err,
            "problem.evidence[0].kind",
            &["photo, video, document"],
        );
    }

    #[test]
    fn a_vocabulary_value_wrapped_in_an_object_is_rejected() {
        let err = rejected(&given(|r| r["channel"] = json!({"web": null})));
        assert_invalid_field(
            &err,
            "channel",
            &["must be one of: web, app", "not an object"],
        );
        let err = rejected(&given(|r| {
            r["expected_resolution"] = json!({"refund": null})
        }));
        assert_invalid_field(&err, "expected_resolution", &["must be one of: refund"]);
    }

    #[test]
    fn an_object_of_the_wrong_type_is_rejected_in_plain_words() {
        let err = rejected(&given(|r| r["order"]["payment"] = json!([])));
        assert_invalid_field(&err, "order.payment", &["must be an object, not an array"]);
    }

    #[test]
    fn an_object_given_as_a_positional_array_is_rejected() {
        let err = rejected(&given(|r| {
            r["order"]["payment"] = json!(["stripe", "pi_3QbT7vHs2LmN0pQr4sTu5vWx", 16349]);
        }));
        assert_invalid_field(&err, "order.payment", &["must be an object, not an array"]);
        let err = rejected(&given(|r| {
            r["problem"]["lines"][0] = json!(["L1", 1]);
        }));
        assert_invalid_field(
            &err,
            "problem.lines[0]",
            &["must be an object, not an array"],
        );
    }

    #[test]
    fn a_list_of_the_wrong_type_is_rejected_in_plain_words() {
        let err = rejected(&given(|r| r["problem"]["lines"] = json!({})));
        assert_invalid_field(
            &err,
            "problem.lines",
            &["must be an array", "not an object"],
        );
    }

    #[test]
    fn a_flag_given_as_a_string_is_rejected() {
        let err = rejected(&given(|r| {
            r["order"]["lines"][1]["final_sale"] = json!("yes")
        }));
        assert_invalid_field(
            &err,
            "order.lines[1].final_sale",
            &["must be true or false, not a string"],
        );
    }

    #[test]
    fn a_string_field_given_a_number_is_rejected() {
        let err = rejected(&given(|r| r["order"]["id"] = json!(4471)));
        assert_invalid_field(&err, "order.id", &["must be a string, not a number"]);
    }

    #[test]
    fn a_negative_amount_is_rejected() {
        let err = rejected(&given(|r| r["order"]["lines"][1]["unit_price"] = json!(-5)));
        assert_invalid_field(&err, "order.lines[1].unit_price", &["must not be negative"]);
        let err = rejected(&given(|r| r["order"]["shipping_paid"] = json!(-1)));
        assert_invalid_field(&err, "order.shipping_paid", &["must not be negative"]);
    }

    #[test]
    fn a_fractional_amount_is_rejected() {
        let err = rejected(&given(|r| r["order"]["payment"]["paid"] = json!(163.49)));
        assert_invalid_field(&err, "order.payment.paid", &["whole number", "minor units"]);
    }

    #[test]
    fn an_amount_written_with_a_decimal_point_is_rejected() {
        let body = serde_json::to_string(&given_a_valid_request())
            .expect("serialisable")
            .replacen(r#""paid":16349"#, r#""paid":16349.0"#, 1);
        let err = rejected_body(&body);
        assert_invalid_field(&err, "order.payment.paid", &["without a decimal point"]);
    }

    #[test]
    fn an_amount_beyond_64_bits_is_rejected() {
        for too_large in ["9223372036854775808", "18446744073709551616", "1e30"] {
            let body = serde_json::to_string(&given_a_valid_request())
                .expect("serialisable")
                .replacen(
                    r#""shipping_paid":599"#,
                    &format!(r#""shipping_paid":{too_large}"#),
                    1,
                );
            let err = rejected_body(&body);
            assert_invalid_field(&err, "order.shipping_paid", &["too large"]);
        }
    }

    #[test]
    fn an_amount_given_as_a_string_is_rejected() {
        let err = rejected(&given(|r| {
            r["order"]["lines"][0]["unit_price"] = json!("14.50")
        }));
        assert_invalid_field(
            &err,
            "order.lines[0].unit_price",
            &["whole number of minor units", "not a string"],
        );
    }

    #[test]
    fn an_unknown_currency_is_rejected() {
        let err = rejected(&given(|r| r["order"]["currency"] = json!("usd")));
        assert_invalid_field(&err, "order.currency", &["ISO 4217"]);
    }

    #[test]
    fn an_empty_id_is_rejected() {
        let err = rejected(&given(|r| r["request_id"] = json!("")));
        assert_invalid_field(&err, "request_id", &["must not be empty"]);
    }

    #[test]
    fn a_whitespace_padded_id_is_rejected() {
        let err = rejected(&given(|r| r["order"]["id"] = json!(" 100-4471")));
        assert_invalid_field(&err, "order.id", &["leading/trailing spaces"]);
        let err = rejected(&given(|r| {
            r["problem"]["lines"][1]["line_id"] = json!("L3 ")
        }));
        assert_invalid_field(
            &err,
            "problem.lines[1].line_id",
            &["leading/trailing spaces"],
        );
    }

    #[test]
    fn an_over_long_id_is_rejected() {
        let err = rejected(&given(|r| r["customer"]["id"] = json!("c".repeat(129))));
        assert_invalid_field(&err, "customer.id", &["at most 128"]);
    }

    #[test]
    fn a_zero_quantity_is_rejected() {
        let err = rejected(&given(|r| r["order"]["lines"][2]["quantity"] = json!(0)));
        assert_invalid_field(&err, "order.lines[2].quantity", &["at least 1"]);
        let err = rejected(&given(|r| r["problem"]["lines"][0]["quantity"] = json!(0)));
        assert_invalid_field(&err, "problem.lines[0].quantity", &["at least 1"]);
    }

    #[test]
    fn a_negative_fractional_or_huge_quantity_is_rejected() {
        let cases = [
            (json!(-2), "at least 1"),
            (json!(1.5), "whole number of units"),
            (json!(4_294_967_296_u64), "too large"),
        ];
        for (quantity, words) in cases {
            let err = rejected(&given(|r| r["order"]["lines"][0]["quantity"] = quantity));
            assert_invalid_field(&err, "order.lines[0].quantity", &[words]);
        }
    }

    #[test]
    fn a_timestamp_without_an_offset_is_rejected() {
        let err = rejected(&given(|r| r["submitted_at"] = json!("2026-11-20T17:30:00")));
        assert_invalid_field(&err, "submitted_at", &["RFC 3339", "offset"]);
    }

    #[test]
    fn a_timestamp_in_another_iso_8601_form_is_rejected() {
        for not_rfc3339 in [
            "2026-11-20",
            "2026-11-20 17:30:00Z",
            "20261120T173000Z",
            "2026-11-20T17:30Z",
            "2026-11-20T17:30:00+08:00[Asia/Shanghai]",
            "yesterday",
        ] {
            let err = rejected(&given(|r| r["order"]["placed_at"] = json!(not_rfc3339)));
            assert_invalid_field(&err, "order.placed_at", &["RFC 3339"]);
        }
    }

    #[test]
    fn an_impossible_date_is_rejected() {
        let err = rejected(&given(|r| {
            r["order"]["delivered_at"] = json!("2026-02-30T10:00:00Z");
        }));
        assert_invalid_field(&err, "order.delivered_at", &["not a real date"]);
    }

    #[test]
    fn a_type_error_does_not_echo_the_value_given() {
        let err = rejected(&given(|r| {
            r["problem"]["lines"][0]["quantity"] = json!("jordan.avery@example.org");
        }));
        assert_invalid_field(&err, "problem.lines[0].quantity", &["not a string"]);
        assert!(!err.message.contains("jordan"), "{}", err.message);
    }
}

mod field_rules {
    use super::*;

    #[test]
    fn a_description_over_4000_characters_is_rejected_without_echoing_it() {
        let err = rejected(&given(|r| {
            r["problem"]["description"] = json!(format!("secret{}", "x".repeat(3995)));
        }));
        assert_invalid_field(&err, "problem.description", &["at most 4000", "4001"]);
        assert!(!err.message.contains("secret"));
    }

    #[test]
    fn a_title_over_500_characters_is_rejected_naming_the_line() {
        let err = rejected(&given(|r| {
            r["order"]["lines"][1]["title"] = json!("k".repeat(501))
        }));
        assert_invalid_field(&err, "order.lines[1].title", &["at most 500"]);
    }

    #[test]
    fn a_blank_title_is_rejected() {
        let err = rejected(&given(|r| r["order"]["lines"][2]["title"] = json!("   ")));
        assert_invalid_field(&err, "order.lines[2].title", &["blank"]);
    }

    #[test]
    fn an_over_long_name_is_rejected() {
        let err = rejected(&given(|r| r["customer"]["name"] = json!("n".repeat(201))));
        assert_invalid_field(&err, "customer.name", &["at most 200"]);
    }

    #[test]
    fn an_email_without_an_at_sign_is_rejected_without_echoing_it() {
        for email in [
            "jordan.avery.example.org",
            "@example.org",
            "jordan@",
            "jo rdan@x.org",
        ] {
            let err = rejected(&given(|r| r["customer"]["email"] = json!(email)));
            assert_invalid_field(&err, "customer.email", &["email address", "'@'"]);
            assert!(!err.message.contains("jordan"), "{}", err.message);
        }
    }

    #[test]
    fn a_phone_number_with_letters_is_rejected_without_echoing_it() {
        let err = rejected(&given(|r| r["customer"]["phone"] = json!("call 555-0104")));
        assert_invalid_field(&err, "customer.phone", &["phone number"]);
        assert!(!err.message.contains("555"), "{}", err.message);
    }

    #[test]
    fn an_evidence_url_that_is_not_https_is_rejected() {
        for url in [
            "http://media.shop.example/r/0042/mugs.jpg",
            "http://localhost:8080/mugs.jpg",
            "ftp://media.shop.example/mugs.jpg",
            "HTTPS://media.shop.example/mugs.jpg",
            "https://",
            "https:///mugs.jpg",
            "https://user:secret@media.shop.example/mugs.jpg",
            "https://media.shop.example/my mugs.jpg",
            "mugs.jpg",
        ] {
            let err = rejected(&given(|r| r["problem"]["evidence"][0]["url"] = json!(url)));
            assert_invalid_field(&err, "problem.evidence[0].url", &["https://"]);
            assert!(!err.message.contains("secret"), "{}", err.message);
        }
    }

    #[test]
    fn an_over_long_evidence_url_is_rejected() {
        let url = format!("https://media.shop.example/{}", "a".repeat(2048));
        let err = rejected(&given(|r| r["problem"]["evidence"][0]["url"] = json!(url)));
        assert_invalid_field(&err, "problem.evidence[0].url", &["at most 2048"]);
    }
}

mod cross_field_rules {
    use super::*;

    #[test]
    fn a_request_submitted_before_the_order_was_placed_is_rejected() {
        let err = rejected(&given(|r| {
            r["submitted_at"] = json!("2026-11-02T13:14:59Z")
        }));
        assert_invalid_field(&err, "submitted_at", &["before order.placed_at"]);
    }

    #[test]
    fn a_delivery_before_the_order_was_placed_is_rejected() {
        let err = rejected(&given(|r| {
            r["order"]["delivered_at"] = json!("2026-11-02T08:14:59-05:00");
        }));
        assert_invalid_field(&err, "order.delivered_at", &["before order.placed_at"]);
    }

    #[test]
    fn an_order_without_lines_is_rejected() {
        let err = rejected(&given(|r| r["order"]["lines"] = json!([])));
        assert_invalid_field(&err, "order.lines", &["at least one line"]);
    }

    #[test]
    fn a_line_id_repeated_in_the_order_is_rejected_naming_the_repeat() {
        let err = rejected(&given(|r| r["order"]["lines"][2]["line_id"] = json!("L1")));
        assert_invalid_field(
            &err,
            "order.lines[2].line_id",
            &["'L1'", "more than once", "order.lines[0]"],
        );
    }

    #[test]
    fn an_order_total_beyond_64_bits_is_rejected_naming_the_lines() {
        let err = rejected(&given(|r| {
            r["order"]["lines"][0]["unit_price"] = json!(i64::MAX);
        }));
        assert_invalid_field(&err, "order.lines", &["order total", "64-bit"]);
    }

    #[test]
    fn an_order_total_overflowing_only_with_shipping_is_rejected_naming_the_lines() {
        let err = rejected(&given(|r| {
            r["order"]["lines"] = json!([{
                "line_id": "L1", "sku": "GOLD-BAR", "title": "Gold bar", "category": "bullion",
                "quantity": 1, "unit_price": i64::MAX
            }]);
            r["problem"]["lines"] = json!([{ "line_id": "L1", "quantity": 1 }]);
            r["order"]["shipping_paid"] = json!(1);
        }));
        assert_invalid_field(&err, "order.lines", &["order total"]);
    }

    #[test]
    fn a_payment_above_the_order_total_is_rejected() {
        let err = rejected(&given(|r| r["order"]["payment"]["paid"] = json!(17750)));
        assert_invalid_field(
            &err,
            "order.payment.paid",
            &["177.50 USD", "more than the order total of 177.49 USD"],
        );
    }

    #[test]
    fn nothing_paid_for_priced_lines_is_rejected() {
        let err = rejected(&given(|r| r["order"]["payment"]["paid"] = json!(0)));
        assert_invalid_field(&err, "order.payment.paid", &["more than 0", "priced lines"]);
    }

    #[test]
    fn a_problem_without_lines_is_rejected() {
        let err = rejected(&given(|r| r["problem"]["lines"] = json!([])));
        assert_invalid_field(&err, "problem.lines", &["at least one"]);
    }

    #[test]
    fn a_problem_line_missing_from_the_order_is_rejected_naming_it() {
        let err = rejected(&given(|r| {
            r["problem"]["lines"][1]["line_id"] = json!("L9")
        }));
        assert_invalid_field(
            &err,
            "problem.lines[1].line_id",
            &["line 'L9' is not in the order"],
        );
    }

    #[test]
    fn a_problem_line_listed_twice_is_rejected_naming_the_repeat() {
        let err = rejected(&given(|r| {
            r["problem"]["lines"][1]["line_id"] = json!("L1")
        }));
        assert_invalid_field(
            &err,
            "problem.lines[1].line_id",
            &["'L1'", "more than once", "problem.lines[0]"],
        );
    }

    #[test]
    fn quantity_above_ordered_is_rejected_naming_the_line() {
        let err = rejected(&given(|r| r["problem"]["lines"][0]["quantity"] = json!(3)));
        assert_invalid_field(
            &err,
            "problem.lines[0].quantity",
            &["quantity 3 is more than the 2 ordered"],
        );
    }
}

mod which_error_first {
    use super::*;

    #[test]
    fn type_errors_are_reported_before_cross_field_rules() {
        let err = rejected(&given(|r| {
            r["submitted_at"] = json!("2026-11-01T00:00:00Z");
            r["expected_resolution"] = json!("money_back");
        }));
        assert_invalid_field(&err, "expected_resolution", &["'money_back'"]);
    }

    #[test]
    fn rules_are_checked_in_document_order() {
        let err = rejected(&given(|r| {
            r["problem"]["lines"][0]["line_id"] = json!("L9");
            r["order"]["payment"]["paid"] = json!(99_999);
            r["customer"]["email"] = json!("nobody");
        }));
        assert_invalid_field(&err, "customer.email", &["email address"]);

        let err = rejected(&given(|r| {
            r["problem"]["lines"][0]["line_id"] = json!("L9");
            r["order"]["payment"]["paid"] = json!(99_999);
        }));
        assert_invalid_field(&err, "order.payment.paid", &["more than the order total"]);
    }

    #[test]
    fn the_same_body_always_earns_the_same_error() {
        let request = given(|r| {
            r["problem"]["lines"][1]["line_id"] = json!("L9");
            r["problem"]["lines"][0]["quantity"] = json!(3);
        });
        let first = rejected(&request);
        assert_eq!(first.field.as_deref(), Some("problem.lines[0].quantity"));
        for _ in 0..5 {
            assert_eq!(rejected(&request), first);
        }
    }
}

mod error_body {
    use super::*;

    #[test]
    fn a_field_error_has_exactly_the_api_error_shape() {
        let err = rejected(&given(|r| remove(&mut r["order"], "currency")));
        assert_eq!(
            err.to_api_error(),
            json!({"error": {
                "code": "invalid_field",
                "message": "is required",
                "field": "order.currency"
            }})
        );
    }

    #[test]
    fn a_body_error_has_no_field_in_the_api_error() {
        let err = rejected_body("{");
        let body = err.to_api_error();
        assert_eq!(body["error"]["code"], json!("invalid_json"));
        assert!(body["error"]["message"].is_string());
        assert_eq!(
            body["error"].as_object().map(|o| o.len()),
            Some(2),
            "{body}"
        );
    }

    #[test]
    fn a_request_error_serialises_as_the_inner_error_object() {
        let err = rejected(&given(|r| r["channel"] = json!("fax")));
        let inner = serde_json::to_value(&err).expect("serialisable");
        assert_eq!(inner, err.to_api_error()["error"]);
    }

    #[test]
    fn a_request_error_displays_code_field_and_message() {
        let err = rejected(&given(|r| r["problem"]["lines"][0]["quantity"] = json!(3)));
        assert_eq!(
            err.to_string(),
            "invalid_field at problem.lines[0].quantity: quantity 3 is more than the 2 ordered"
        );
    }
}

mod properties {
    use super::*;
    use aftersales_domain::ids::{PaymentProvider, PaymentReference};
    use aftersales_domain::kinds::{EvidenceKind, ProblemKind};
    use aftersales_domain::request::{Customer, Order, OrderLine, Payment, Problem, ProblemLine};
    use aftersales_domain::{
        Amount, Category, Channel, CustomerId, Evidence, ExpectedResolution, LineId, Locale,
        OrderId, Quantity, RequestId, Sku,
    };
    use jiff::{SignedDuration, Timestamp};
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};

    const ID: &str = "[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}";

    fn arb_line(index: usize) -> impl Strategy<Value = OrderLine> {
        (
            ID,
            "[A-Za-z0-9][A-Za-z0-9 ,.-]{0,40}",
            "[a-z]{1,12}",
            1u32..=1000,
            0i64..=10_000_000,
            any::<bool>(),
        )
            .prop_map(move |(sku, title, category, quantity, price, final_sale)| {
                OrderLine {
                    line_id: LineId::new(format!("L{index}")).expect("line id"),
                    sku: Sku::new(sku).expect("sku"),
                    title,
                    category: Category::new(category).expect("category"),
                    quantity: Quantity::new(quantity).expect("quantity"),
                    unit_price: Amount::new(price).expect("price"),
                    final_sale,
                }
            })
    }

    fn arb_lines() -> impl Strategy<Value = Vec<OrderLine>> {
        (1usize..=5).prop_flat_map(|n| (0..n).map(arb_line).collect::<Vec<_>>())
    }

    fn arb_order() -> impl Strategy<Value = Order> {
        (
            ID,
            select(vec!["USD", "CNY", "JPY", "EUR", "KWD"]),
            1_600_000_000i64..1_900_000_000,
            0i32..1_000_000_000,
            proptest::option::of(0i64..2_592_000),
            0i64..=100_000,
            arb_lines(),
            0u32..=1000,
            ID,
        )
            .prop_map(
                |(id, currency, secs, nanos, delivery, shipping, lines, share, reference)| {
                    let placed_at = Timestamp::new(secs, nanos).expect("timestamp");
                    let total: i64 = lines
                        .iter()
                        .map(|l| l.unit_price.minor() * i64::from(l.quantity.get()))
                        .sum::<i64>()
                        + shipping;
                    let priced = lines.iter().any(|l| l.unit_price.minor() > 0);
                    let mut paid = total * i64::from(share) / 1000;
                    if priced && paid == 0 {
                        paid = 1;
                    }
                    Order {
                        id: OrderId::new(id).expect("order id"),
                        currency: currency.parse().expect("currency"),
                        placed_at,
                        delivered_at: delivery.map(|s| placed_at + SignedDuration::from_secs(s)),
                        shipping_paid: Amount::new(shipping).expect("shipping"),
                        lines,
                        payment: Payment {
                            provider: PaymentProvider::new("stripe").expect("provider"),
                            reference: PaymentReference::new(reference).expect("reference"),
                            paid: Amount::new(paid).expect("paid"),
                        },
                    }
                },
            )
    }

    fn arb_problem(order: &Order) -> impl Strategy<Value = Problem> + use<> {
        let ordered: Vec<(LineId, u32)> = order
            .lines
            .iter()
            .map(|l| (l.line_id.clone(), l.quantity.get()))
            .collect();
        let n = ordered.len();
        let lines = subsequence(ordered, 1..=n).prop_flat_map(|chosen| {
            chosen
                .into_iter()
                .map(|(line_id, max)| {
                    (1..=max).prop_map(move |q| ProblemLine {
                        line_id: line_id.clone(),
                        quantity: Quantity::new(q).expect("quantity"),
                    })
                })
                .collect::<Vec<_>>()
        });
        let evidence = proptest::collection::vec(
            (
                select(EvidenceKind::ALL.to_vec()),
                "https://[a-z0-9]{1,10}\\.example(/[A-Za-z0-9._-]{1,12}){0,3}",
            )
                .prop_map(|(kind, url)| Evidence { kind, url }),
            0..3,
        );
        (
            select(ProblemKind::ALL.to_vec()),
            "\\PC{0,200}",
            lines,
            evidence,
        )
            .prop_map(|(kind, description, lines, evidence)| Problem {
                kind,
                description,
                lines,
                evidence,
            })
    }

    fn arb_customer() -> impl Strategy<Value = Customer> {
        (
            ID,
            proptest::option::of("\\PC{0,60}"),
            proptest::option::of("[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\\.example"),
            proptest::option::of("\\+?[0-9][0-9 ()-]{2,20}"),
            select(Locale::ALL.to_vec()),
            select(aftersales_domain::CustomerTier::ALL.to_vec()),
        )
            .prop_map(|(id, name, email, phone, locale, tier)| Customer {
                id: CustomerId::new(id).expect("customer id"),
                name,
                email,
                phone,
                locale,
                tier,
            })
    }

    fn arb_request() -> impl Strategy<Value = ServiceRequest> {
        arb_order().prop_flat_map(|order| {
            (
                ID,
                select(Channel::ALL.to_vec()),
                0i64..7_776_000,
                arb_customer(),
                arb_problem(&order),
                proptest::option::of(select(ExpectedResolution::ALL.to_vec())),
                Just(order),
            )
                .prop_map(
                    |(request_id, channel, after, customer, problem, expected, order)| {
                        ServiceRequest {
                            request_id: RequestId::new(request_id).expect("request id"),
                            channel,
                            submitted_at: order.placed_at + SignedDuration::from_secs(after),
                            customer,
                            order,
                            problem,
                            expected_resolution: expected,
                        }
                    },
                )
        })
    }

    proptest! {
        #[test]
        fn any_valid_request_round_trips_through_its_json(request in arb_request()) {
            let body = serde_json::to_vec(&request).expect("serialisable");
            prop_assert_eq!(parse_request(&body), Ok(request));
        }

        #[test]
        fn a_problem_quantity_above_the_ordered_one_is_always_rejected_naming_that_line(
            request in arb_request(),
            pick in any::<prop::sample::Index>(),
            extra in 1u32..=1_000_000,
        ) {
            let i = pick.index(request.problem.lines.len());
            let affected = &request.problem.lines[i];
            let ordered = request
                .order
                .line(&affected.line_id)
                .expect("problem lines come from the order")
                .quantity
                .get();
            let mut body = serde_json::to_value(&request).expect("serialisable");
            body["problem"]["lines"][i]["quantity"] = json!(ordered + extra);

            let err = parse(&body).expect_err("more than ordered");
            prop_assert_eq!(err.code, ErrorCode::InvalidField);
            let expected_field = format!("problem.lines[{i}].quantity");
            prop_assert_eq!(err.field.as_deref(), Some(expected_field.as_str()));
            let expected_words = format!("more than the {ordered} ordered");
            prop_assert!(err.message.contains(&expected_words), "{}", err.message);
        }
    }
}

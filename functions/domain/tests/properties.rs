//! Properties of money, prorating, policy durations, diagnosis and proposal over arbitrary
//! orders, quantities and histories.

use aftersales_domain::history::{OrderHistory, PastRefund, RefundedLine};
use aftersales_domain::{
    Currency, History, Money, MoneyError, Policy, PolicyDuration, ServiceRequest, diagnose, propose,
};
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

const CURRENCIES: &[&str] = &["CNY", "USD", "JPY", "KWD", "EUR"];
const PROBLEM_KINDS: &[&str] = &[
    "quality_defect",
    "damaged_in_transit",
    "wrong_item",
    "missing_parts",
    "not_as_described",
    "late_delivery",
    "changed_mind",
    "misuse",
    "other",
];
const EXPECTED: &[&str] = &[
    "refund",
    "return_refund",
    "exchange",
    "repair",
    "parts",
    "price_adjustment",
    "coupon",
];
const CATEGORIES: &[&str] = &[
    "electronics",
    "apparel",
    "furniture",
    "toys",
    "clearance",
    "fresh_food",
    "books",
];
const TIERS: &[&str] = &["standard", "silver", "gold", "vip"];
const BASE: i64 = 1_790_000_000; // 2026-09 in Unix seconds

fn currency(code: &str) -> Currency {
    code.parse().expect("listed currencies are ISO 4217")
}

/// Prices from everyday values up to the edge of i64, so overflow paths are exercised.
fn price() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 0i64..2_000_000,
        1 => 0i64..=i64::MAX,
        1 => Just(i64::MAX),
    ]
}

fn quantity() -> impl Strategy<Value = u32> {
    prop_oneof![9 => 1u32..30, 1 => 1u32..=u32::MAX]
}

#[derive(Debug, Clone)]
struct Case {
    request: ServiceRequest,
    history: History,
    now: Timestamp,
}

fn ts(offset_secs: i64) -> String {
    Timestamp::from_second(BASE + offset_secs)
        .expect("offsets stay within a few years")
        .to_string()
}

prop_compose! {
    fn order_line(index: usize)(
        qty in quantity(),
        unit in price(),
        category in prop::sample::select(CATEGORIES),
        final_sale in prop::bool::weighted(0.1),
        gift in prop::bool::weighted(0.05),
    ) -> Value {
        json!({
            "line_id": format!("L{index}"),
            "sku": if gift { "GIFT-CARD".to_owned() } else { format!("SKU-{index}") },
            "title": "item",
            "category": category,
            "quantity": qty,
            "unit_price": unit,
            "final_sale": final_sale,
        })
    }
}

fn lines() -> impl Strategy<Value = Vec<Value>> {
    (1usize..4).prop_flat_map(|n| (0..n).map(order_line).collect::<Vec<_>>())
}

prop_compose! {
    fn case()(
        lines in lines(),
        code in prop::sample::select(CURRENCIES),
        kind in prop::sample::select(PROBLEM_KINDS),
        expected in prop::option::of(prop::sample::select(EXPECTED)),
        tier in prop::sample::select(TIERS),
        shipping in price(),
        paid in price(),
        placed in 0i64..40 * 86_400,
        delivery_after in prop::option::of(0i64..20 * 86_400),
        now_after in 0i64..80 * 86_400,
        claims in prop::collection::vec((0usize..5, quantity()), 0..4),
        evidence in 0usize..3,
        refunded in price(),
        refunded_lines in prop::collection::vec((0usize..4, 0u32..40), 0..3),
        past_refunds in prop::collection::vec(0i64..200 * 86_400, 0..6),
        description in prop::sample::select(&["", "it caught FIRE", "冒烟了", "fine", "campfire"][..]),
    ) -> Case {
        let line_count = lines.len();
        let placed_at = ts(placed);
        let delivered_at = delivery_after.map(|d| ts(placed + d));
        let mut order = json!({
            "id": "ORD-1",
            "currency": code,
            "placed_at": placed_at,
            "shipping_paid": shipping,
            "lines": lines,
            "payment": {"provider": "stripe", "reference": "pi_1", "paid": paid},
        });
        if let Some(d) = delivered_at {
            order["delivered_at"] = json!(d);
        }
        // Index line_count names a line that is not on the order.
        let claimed: Vec<Value> = claims
            .iter()
            .map(|(i, q)| json!({"line_id": format!("L{}", i.min(&line_count)), "quantity": q}))
            .collect();
        let evidence: Vec<Value> = (0..evidence)
            .map(|i| json!({"kind": if i == 0 { "photo" } else { "document" }, "url": "https://e.example/x"}))
            .collect();
        let mut request = json!({
            "request_id": "evt_1",
            "channel": "web",
            "submitted_at": ts(placed + now_after / 2),
            "customer": {"id": "C-1", "locale": "en", "tier": tier},
            "order": order,
            "problem": {"kind": kind, "description": description, "lines": claimed, "evidence": evidence},
        });
        if let Some(e) = expected {
            request["expected_resolution"] = json!(e);
        }
        let request: ServiceRequest =
            serde_json::from_value(request).expect("generated requests are well-typed");
        let history = History {
            customer: aftersales_domain::history::CustomerHistory {
                previous_tickets: u32::try_from(past_refunds.len()).unwrap_or(0),
                refunds: past_refunds
                    .iter()
                    .map(|s| PastRefund {
                        order_id: "ORD-0".parse().expect("valid id"),
                        at: Timestamp::from_second(BASE + placed + now_after - s).expect("in range"),
                        amount: Money::new(100, currency(code)),
                    })
                    .collect(),
            },
            order: OrderHistory {
                refunded: aftersales_domain::Amount::new(refunded).expect("non-negative"),
                refunded_lines: refunded_lines
                    .iter()
                    .map(|(i, q)| RefundedLine {
                        line_id: format!("L{i}").parse().expect("valid id"),
                        quantity: *q,
                    })
                    .collect(),
                open_claims: vec![],
            },
        };
        Case {
            request,
            history,
            now: Timestamp::from_second(BASE + placed + now_after).expect("in range"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_option_ever_exceeds_paid_minus_already_refunded(case in case()) {
        let policy = Policy::default_policy();
        let diagnosis = diagnose(&case.request, &case.history, &policy, case.now);
        let proposal = propose(&case.request, &diagnosis, &case.history, &policy);
        let paid = case.request.order.payment.paid.minor();
        let cap = paid.saturating_sub(case.history.order.refunded.minor()).max(0);
        prop_assert_eq!(proposal.cap.minor, cap);
        prop_assert!(diagnosis.amounts.refundable.minor <= cap);
        prop_assert!(!proposal.options.is_empty());
        for (i, option) in proposal.options.iter().enumerate() {
            prop_assert_eq!(option.id.as_str(), format!("opt-{}", i + 1));
            if let Some(amount) = option.amount {
                prop_assert_eq!(amount.currency, case.request.order.currency);
                prop_assert!(amount.minor >= 0, "negative amount {:?}", option);
                prop_assert!(amount.minor <= cap, "{:?} exceeds cap {}", option, cap);
            }
        }
    }

    #[test]
    fn refundable_units_never_exceed_what_is_left_on_the_line(case in case()) {
        let policy = Policy::default_policy();
        let diagnosis = diagnose(&case.request, &case.history, &policy, case.now);
        for line in &diagnosis.lines {
            prop_assert!(line.refundable <= line.requested);
            prop_assert!(line.refundable <= line.ordered.saturating_sub(line.already_refunded));
            prop_assert_eq!(line.eligible, line.reasons.is_empty());
        }
        prop_assert_eq!(diagnosis.review.required, !diagnosis.review.reasons.is_empty());
    }

    #[test]
    fn diagnosis_and_proposal_serialise_and_read_back(case in case()) {
        let policy = Policy::default_policy();
        let diagnosis = diagnose(&case.request, &case.history, &policy, case.now);
        let proposal = propose(&case.request, &diagnosis, &case.history, &policy);
        let d: aftersales_domain::Diagnosis =
            serde_json::from_value(serde_json::to_value(&diagnosis).expect("serialises"))
                .expect("reads back");
        let p: aftersales_domain::Proposal =
            serde_json::from_value(serde_json::to_value(&proposal).expect("serialises"))
                .expect("reads back");
        prop_assert_eq!(d, diagnosis);
        prop_assert_eq!(p, proposal);
    }

    #[test]
    fn checked_money_arithmetic_errs_exactly_when_i128_is_out_of_range(a: i64, b: i64) {
        let cny = currency("CNY");
        let (x, y) = (Money::new(a, cny), Money::new(b, cny));
        let expect = |wide: i128| i64::try_from(wide).map(|v| Money::new(v, cny)).map_err(|_| MoneyError::Overflow);
        prop_assert_eq!(x.checked_add(y), expect(i128::from(a) + i128::from(b)));
        prop_assert_eq!(x.checked_sub(y), expect(i128::from(a) - i128::from(b)));
        prop_assert_eq!(x.checked_mul(b), expect(i128::from(a) * i128::from(b)));
    }

    #[test]
    fn money_never_mixes_currencies(a: i64, b: i64) {
        let x = Money::new(a, currency("CNY"));
        let y = Money::new(b, currency("USD"));
        let mismatch = Err(MoneyError::CurrencyMismatch { left: currency("CNY"), right: currency("USD") });
        prop_assert_eq!(x.checked_add(y), mismatch.clone());
        prop_assert_eq!(x.checked_sub(y), mismatch.clone());
        prop_assert_eq!(x.min(y), mismatch);
    }

    #[test]
    fn prorating_never_exceeds_the_line_total_and_grows_with_quantity(
        unit in 0i64..=i64::MAX,
        qty in 1u32..=1000,
        k1 in 0u32..=1000,
        k2 in 0u32..=1000,
    ) {
        let cny = currency("CNY");
        let (k1, k2) = (k1.min(qty), k2.min(qty));
        let (low, high) = (k1.min(k2), k1.max(k2));
        // The line total may itself overflow: prorate a total that fits.
        let total_minor = i64::try_from(i128::from(unit) * i128::from(qty)).unwrap_or(i64::MAX);
        let total = Money::new(total_minor, cny);
        let part_low = total.prorate(low, qty).expect("fits: part of a total that fits");
        let part_high = total.prorate(high, qty).expect("fits: part of a total that fits");
        prop_assert!(part_high.minor <= total.minor);
        prop_assert!(part_low.minor <= part_high.minor);
        prop_assert_eq!(total.prorate(qty, qty), Ok(total));
        prop_assert_eq!(
            i128::from(part_high.minor),
            i128::from(total.minor) * i128::from(high) / i128::from(qty)
        );
    }

    #[test]
    fn policy_durations_round_trip_through_their_text(secs in 0i64..=10 * 365 * 86_400) {
        let minutes = secs / 60 * 60;
        let d = PolicyDuration::from_secs(minutes).expect("within ten years");
        prop_assert_eq!(d.to_string().parse::<PolicyDuration>(), Ok(d));
    }

    #[test]
    fn duration_parsing_never_panics(text in "\\PC{0,12}") {
        let _ = text.parse::<PolicyDuration>();
    }
}

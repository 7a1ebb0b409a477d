//! Business scenarios as JSON fixtures (`tests/fixtures/scenarios/NN-name.json`), each its own
//! test. A fixture gives the policy (a file under `tests/fixtures/policies/`, or the default),
//! the clock, the request and the history, and the subset of the diagnosis and proposal it
//! expects: every expected key must match, extra keys in the result are allowed. Arrays match
//! element by element and must have the same length, unless written as
//! `{"$contains": [...]}` (each listed element matches some element) or
//! `{"$not_contains": [...]}` (no element matches any listed one).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use aftersales_domain::{History, Policy, ServiceRequest, diagnose, propose};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    description: String,
    #[serde(default)]
    policy: Option<String>,
    now: Timestamp,
    request: Value,
    #[serde(default)]
    history: History,
    expected: Expected,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(default)]
    diagnosis: Option<Value>,
    #[serde(default)]
    proposal: Option<Value>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run_scenario(file: &str) {
    let path = fixtures().join("scenarios").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let scenario: Scenario =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not a scenario: {e}"));
    let policy = match &scenario.policy {
        None => Policy::default_policy(),
        Some(name) => {
            let policy_path = fixtures().join("policies").join(name);
            let text = std::fs::read_to_string(&policy_path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", policy_path.display()));
            Policy::from_toml_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
        }
    };
    let request: ServiceRequest = serde_json::from_value(scenario.request)
        .unwrap_or_else(|e| panic!("{file}: request does not deserialize: {e}"));
    let diagnosis = diagnose(&request, &scenario.history, &policy, scenario.now);
    let proposal = propose(&request, &diagnosis, &scenario.history, &policy);

    let mut mismatches = Vec::new();
    let mut report = String::new();
    for (name, expected, actual) in [
        (
            "diagnosis",
            &scenario.expected.diagnosis,
            serde_json::to_value(&diagnosis).expect("diagnosis serialises"),
        ),
        (
            "proposal",
            &scenario.expected.proposal,
            serde_json::to_value(&proposal).expect("proposal serialises"),
        ),
    ] {
        if let Some(expected) = expected {
            let before = mismatches.len();
            match_subset(expected, &actual, name, &mut mismatches);
            if mismatches.len() > before {
                let pretty = serde_json::to_string_pretty(&actual).unwrap_or_default();
                let _ = writeln!(report, "\nactual {name}:\n{pretty}");
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "scenario {file} ({}) does not match:\n  {}\n{report}",
        scenario.description,
        mismatches.join("\n  ")
    );
}

/// Records every place where `actual` does not contain `expected`.
fn match_subset(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(exp), _) if exp.keys().any(|k| k.starts_with('$')) => {
            let Value::Array(items) = actual else {
                out.push(format!("{path}: expected an array, got {actual}"));
                return;
            };
            for (op, wanted) in exp {
                let Value::Array(wanted) = wanted else {
                    out.push(format!("{path}: {op} needs an array"));
                    continue;
                };
                for w in wanted {
                    let found = items.iter().any(|item| {
                        let mut scratch = Vec::new();
                        match_subset(w, item, path, &mut scratch);
                        scratch.is_empty()
                    });
                    match op.as_str() {
                        "$contains" if !found => {
                            out.push(format!("{path}: no element matches {w}"));
                        }
                        "$not_contains" if found => {
                            out.push(format!("{path}: an element matches {w}, expected none"));
                        }
                        "$contains" | "$not_contains" => {}
                        other => out.push(format!("{path}: unknown matcher {other}")),
                    }
                }
            }
        }
        (Value::Object(exp), Value::Object(act)) => {
            for (key, e) in exp {
                let here = format!("{path}.{key}");
                match act.get(key) {
                    Some(a) => match_subset(e, a, &here, out),
                    None => out.push(format!("{here}: missing, expected {e}")),
                }
            }
        }
        (Value::Array(exp), Value::Array(act)) => {
            if exp.len() != act.len() {
                out.push(format!(
                    "{path}: expected {} elements, got {}: {actual}",
                    exp.len(),
                    act.len()
                ));
                return;
            }
            for (i, (e, a)) in exp.iter().zip(act).enumerate() {
                match_subset(e, a, &format!("{path}[{i}]"), out);
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: expected {e}, got {a}")),
    }
}

macro_rules! scenarios {
    ($($name:ident => $file:literal,)+) => {
        $(
            #[test]
            fn $name() {
                run_scenario($file);
            }
        )+

        const LISTED: &[&str] = &[$($file),+];
    };
}

scenarios! {
    s01_quality_defect_with_photo_offers_every_remedy => "01-quality-defect-with-photo.json",
    s02_damaged_in_transit_low_value_is_refunded_without_return => "02-damaged-in-transit-keep-item.json",
    s03_wrong_item_is_exchanged_first => "03-wrong-item-exchange.json",
    s04_missing_parts_are_shipped => "04-missing-parts-parts.json",
    s05_not_as_described_is_returned_for_refund => "05-not-as-described-return.json",
    s06_late_delivery_goes_to_logistics_with_a_coupon => "06-late-delivery-coupon.json",
    s07_changed_mind_customer_pays_the_return_label => "07-changed-mind-customer-pays-return.json",
    s08_misuse_is_rejected_with_reason => "08-misuse-rejected.json",
    s09_other_with_late_dates_is_reclassified_as_late_delivery => "09-other-reclassified-late-delivery.json",
    s10_other_without_clues_goes_to_review => "10-other-unclassified-review.json",
    s11_last_local_day_of_the_window_is_eligible => "11-window-last-local-day-eligible.json",
    s12_day_after_the_window_in_local_time_is_rejected => "12-window-day-after-rejected.json",
    s13_final_sale_sku_rejects_a_change_of_mind => "13-final-sale-sku.json",
    s14_final_sale_category_rejects_a_change_of_mind => "14-final-sale-category.json",
    s15_final_sale_line_stays_claimable_for_a_defect => "15-final-sale-defect-claimable.json",
    s16_repeat_refunder_goes_to_review => "16-repeat-refunder-review.json",
    s17_two_recent_refunds_do_not_trigger_review => "17-repeat-refunder-below-limit.json",
    s18_vip_change_of_mind_gets_free_return_shipping => "18-vip-free-return-shipping.json",
    s19_vip_keeps_a_low_value_item_and_gets_goodwill => "19-vip-keep-item-goodwill.json",
    s20_vip_complaint_goes_to_review => "20-vip-complaint-review.json",
    s21_english_safety_wording_goes_to_review => "21-safety-wording-english.json",
    s22_chinese_safety_wording_goes_to_review => "22-safety-wording-chinese.json",
    s23_amount_over_auto_approve_limit_goes_to_review => "23-amount-over-auto-approve.json",
    s24_partial_quantity_is_prorated_with_the_discount => "24-partial-quantity-prorated.json",
    s25_refund_is_capped_at_paid_minus_refunded => "25-already-refunded-capped.json",
    s26_partially_refunded_line_covers_remaining_units => "26-partially-refunded-line.json",
    s27_fully_refunded_line_is_rejected => "27-fully-refunded-line-rejected.json",
    s28_order_currency_without_policy_rules_skips_with_reasons => "28-currency-without-rules.json",
    s29_policy_limits_in_another_currency_go_to_review => "29-currency-mismatch-policy.json",
    s30_platform_responsibility_in_new_york_time => "30-platform-responsibility.json",
    s31_missing_evidence_is_requested => "31-missing-evidence-requested.json",
    s32_video_evidence_is_sufficient => "32-evidence-given.json",
    s33_expected_exchange_is_ranked_first => "33-exchange-expected.json",
    s34_expected_repair_is_ranked_first => "34-repair-expected.json",
    s35_parts_for_a_toy_with_missing_pieces => "35-parts-toys.json",
    s36_open_ticket_on_the_same_line_is_a_duplicate_claim => "36-duplicate-claim-review.json",
    s37_undelivered_order_is_refunded => "37-not-delivered-refund.json",
    s38_damage_claim_on_undelivered_order_is_late_delivery => "38-damaged-not-delivered-reclassified.json",
    s39_late_delivery_claim_for_an_on_time_order_is_rejected => "39-late-delivery-on-time-rejected.json",
    s40_expected_resolution_not_allowed_is_reported => "40-expected-not-offered.json",
    s41_unknown_line_is_excluded_and_reviewed => "41-unknown-line.json",
    s42_expected_price_adjustment_is_ranked_first => "42-price-adjustment-expected.json",
    s43_expected_coupon_is_ranked_first => "43-coupon-expected.json",
}

#[test]
fn every_fixture_file_is_run() {
    let dir = fixtures().join("scenarios");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| (*s).to_owned()).collect();
    let not_run: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        not_run.is_empty() && missing.is_empty(),
        "fixtures not listed in scenarios!: {not_run:?}; listed but absent: {missing:?}"
    );
}

#[test]
fn the_subset_matcher_reports_differences() {
    let actual = serde_json::json!({"a": 1, "b": [{"k": "x"}, {"k": "y"}], "c": 3});
    let mut out = Vec::new();
    match_subset(
        &serde_json::json!({"a": 1, "b": {"$contains": [{"k": "y"}]}}),
        &actual,
        "$",
        &mut out,
    );
    assert_eq!(out, Vec::<String>::new());
    match_subset(
        &serde_json::json!({"a": 2, "b": [{"k": "x"}], "d": 0, "c": {"$not_contains": []}}),
        &actual,
        "$",
        &mut out,
    );
    assert_eq!(
        out,
        vec![
            "$.a: expected 2, got 1".to_owned(),
            "$.b: expected 1 elements, got 2: [{\"k\":\"x\"},{\"k\":\"y\"}]".to_owned(),
            "$.d: missing, expected 0".to_owned(),
            "$.c: expected an array, got 3".to_owned(),
        ]
    );
}

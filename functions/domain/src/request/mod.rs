//! The canonical after-sales request (`POST /v1/requests` of the public API) as typed data.
//! [`parse_request`] is the only way in: a value of these types has passed every field and
//! cross-field check, so code past the boundary never re-checks.

mod error;
mod parse;
mod rules;
mod wire;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{
    Category, CustomerId, LineId, OrderId, PaymentProvider, PaymentReference, RequestId, Sku,
};
use crate::kinds::{Channel, CustomerTier, Evidence, ExpectedResolution, Locale, ProblemKind};
use crate::money::{Amount, Currency};

pub use error::{ErrorCode, RequestError};
pub use parse::parse_request;
pub use rules::{
    MAX_DESCRIPTION_CHARS, MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_PHONE_CHARS, MAX_TITLE_CHARS,
    MAX_URL_CHARS,
};
use wire::Rfc3339;

/// A quantity of units: at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub fn new(n: u32) -> Result<Self, String> {
        if n == 0 {
            Err("must be at least 1".to_owned())
        } else {
            Ok(Quantity(n))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Quantity::new(n)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 1,
            "maximum": u32::MAX,
            "description": "A number of units, at least 1, written as a JSON integer (no decimal point or exponent)."
        })
    }
}

/// An after-sales request as a storefront submits it (`POST /v1/requests`).
///
/// Beyond what this schema expresses, the parser enforces these cross-field rules (JSON Schema
/// cannot state them): `submitted_at` and `order.delivered_at` are not before `order.placed_at`;
/// `order.lines[*].line_id` are unique; `order.payment.paid` is at most the sum of quantity ×
/// unit_price over the lines plus `order.shipping_paid` (computed without overflow), and more
/// than 0 when any line has a price; every `problem.lines[*].line_id` is a line of the order,
/// named once, with a quantity no more than was ordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// The storefront's unique id for this request: the deduplication key.
    pub request_id: RequestId,
    /// Where the customer opened the request.
    #[serde(deserialize_with = "wire::vocabulary")]
    pub channel: Channel,
    /// When the customer submitted it. Must not be before `order.placed_at`.
    #[serde(deserialize_with = "wire::timestamp")]
    #[schemars(with = "Rfc3339")]
    pub submitted_at: Timestamp,
    #[serde(deserialize_with = "wire::object")]
    pub customer: Customer,
    #[serde(deserialize_with = "wire::object")]
    pub order: Order,
    #[serde(deserialize_with = "wire::object")]
    pub problem: Problem,
    /// What the customer asks for, if they said.
    #[serde(
        default,
        deserialize_with = "wire::optional_vocabulary",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_resolution: Option<ExpectedResolution>,
}

/// The customer and how to reach them. Contact fields are personal data: never logged, never
/// echoed in error messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The merchant's customer id.
    pub id: CustomerId,
    /// The name to address the customer by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_NAME_CHARS))]
    pub name: Option<String>,
    /// An email address: one `@` with text on both sides, no spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_EMAIL_CHARS), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: Option<String>,
    /// A phone number: digits, spaces and `+ - ( ) . /`, with at least one digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_PHONE_CHARS),
        regex(pattern = r"^[0-9 +().\-/]*[0-9][0-9 +().\-/]*$")
    )]
    pub phone: Option<String>,
    /// The language to write to the customer in.
    #[serde(deserialize_with = "wire::vocabulary")]
    pub locale: Locale,
    /// The merchant's loyalty tier for the customer (`standard` when absent).
    #[serde(default, deserialize_with = "wire::vocabulary")]
    pub tier: CustomerTier,
}

/// The order the request is about, as the storefront knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// The merchant's order id.
    pub id: OrderId,
    /// The currency of every amount in the request.
    pub currency: Currency,
    /// When the order was placed.
    #[serde(deserialize_with = "wire::timestamp")]
    #[schemars(with = "Rfc3339")]
    pub placed_at: Timestamp,
    /// When the order reached the customer; absent if it never arrived. Must not be before
    /// `placed_at`.
    #[serde(
        default,
        deserialize_with = "wire::optional_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<Rfc3339>")]
    pub delivered_at: Option<Timestamp>,
    /// Shipping the customer paid, in minor units (0 when absent).
    #[serde(default, deserialize_with = "wire::amount")]
    pub shipping_paid: Amount,
    /// The lines of the order: at least one, each `line_id` once.
    #[serde(deserialize_with = "wire::objects")]
    #[schemars(length(min = 1))]
    pub lines: Vec<OrderLine>,
    /// How the order was paid. `paid` is at most the lines' total plus `shipping_paid`
    /// (discounts may lower it) and more than 0 when any line has a price.
    #[serde(deserialize_with = "wire::object")]
    pub payment: Payment,
}

/// One line of the order: a product and how many units of it were bought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The line's id, unique within the order.
    pub line_id: LineId,
    pub sku: Sku,
    /// The product's name as the customer saw it: not blank.
    #[schemars(length(min = 1, max = MAX_TITLE_CHARS), regex(pattern = r"\S"))]
    pub title: String,
    /// The merchant's product category, the key of per-category policy.
    pub category: Category,
    /// Units ordered.
    pub quantity: Quantity,
    /// Price of one unit in minor units of the order currency.
    #[serde(deserialize_with = "wire::amount")]
    pub unit_price: Amount,
    /// Sold as final sale (not returnable under the merchant's policy).
    #[serde(default)]
    pub final_sale: bool,
}

/// The payment that settled the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// The payment provider that took the money (`stripe`, or the merchant's own label).
    pub provider: PaymentProvider,
    /// The provider's reference for the original charge.
    pub reference: PaymentReference,
    /// What the customer actually paid, in minor units (lines + shipping − discounts).
    #[serde(deserialize_with = "wire::amount")]
    pub paid: Amount,
}

/// What the customer reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// What went wrong, as the customer classifies it.
    #[serde(deserialize_with = "wire::vocabulary")]
    pub kind: ProblemKind,
    /// Free text from the customer: personal data, never logged.
    #[serde(default)]
    #[schemars(length(max = MAX_DESCRIPTION_CHARS))]
    pub description: String,
    /// The affected lines and how many units of each: at least one; each `line_id` must be a
    /// line of `order.lines`, named once, with `quantity` no more than was ordered.
    #[serde(deserialize_with = "wire::objects")]
    #[schemars(length(min = 1))]
    pub lines: Vec<ProblemLine>,
    /// Photos, videos or documents, each by an `https://` URL (no credentials in it).
    #[serde(default, deserialize_with = "wire::evidence_list")]
    #[schemars(transform = wire::https_evidence_urls)]
    pub evidence: Vec<Evidence>,
}

/// A line the problem affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemLine {
    /// A `line_id` of `order.lines`.
    pub line_id: LineId,
    /// Units affected: at most the quantity ordered on that line.
    pub quantity: Quantity,
}

impl Order {
    pub fn line(&self, id: &LineId) -> Option<&OrderLine> {
        self.lines.iter().find(|l| &l.line_id == id)
    }
}

//! The canonical after-sales request (`POST /v1/requests` of the public API) as typed data.
//! Values of these types have passed every field and cross-field check in [`parse`].

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{
    Category, CustomerId, LineId, OrderId, PaymentProvider, PaymentReference, RequestId, Sku,
};
use crate::kinds::{Channel, CustomerTier, Evidence, ExpectedResolution, Locale, ProblemKind};
use crate::money::{Amount, Currency};

/// A quantity of units: at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
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
        schemars::json_schema!({ "type": "integer", "minimum": 1, "maximum": u32::MAX })
    }
}

/// An after-sales request as a storefront submits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// The storefront's unique id for this request: the deduplication key.
    pub request_id: RequestId,
    pub channel: Channel,
    /// When the customer submitted it (RFC 3339).
    #[schemars(with = "String")]
    pub submitted_at: Timestamp,
    pub customer: Customer,
    pub order: Order,
    pub problem: Problem,
    /// What the customer asks for, if they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_resolution: Option<ExpectedResolution>,
}

/// The customer and how to reach them. Contact fields are personal data: never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub id: CustomerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub locale: Locale,
    #[serde(default)]
    pub tier: CustomerTier,
}

/// The order the request is about, as the storefront knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: OrderId,
    pub currency: Currency,
    #[schemars(with = "String")]
    pub placed_at: Timestamp,
    /// When the order reached the customer; absent if it never arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub delivered_at: Option<Timestamp>,
    /// Shipping the customer paid, in minor units.
    #[serde(default)]
    pub shipping_paid: Amount,
    pub lines: Vec<OrderLine>,
    pub payment: Payment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub line_id: LineId,
    pub sku: Sku,
    pub title: String,
    pub category: Category,
    pub quantity: Quantity,
    /// Price of one unit in minor units of the order currency.
    pub unit_price: Amount,
    #[serde(default)]
    pub final_sale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub provider: PaymentProvider,
    pub reference: PaymentReference,
    /// What the customer actually paid, in minor units (lines + shipping − discounts).
    pub paid: Amount,
}

/// What the customer reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Free text from the customer: personal data, never logged.
    #[serde(default)]
    pub description: String,
    /// The affected lines and how many units of each.
    pub lines: Vec<ProblemLine>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemLine {
    pub line_id: LineId,
    pub quantity: Quantity,
}

impl Order {
    pub fn line(&self, id: &LineId) -> Option<&OrderLine> {
        self.lines.iter().find(|l| &l.line_id == id)
    }
}

//! Identifiers. Each is a newtype whose constructor is the only way in.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, got {len}")]
    TooLong { max: usize, len: usize },
    #[error("must not contain control characters or leading/trailing spaces")]
    BadCharacters,
    #[error("is not a ticket id (expected 'tkt_' followed by a 26-character ULID)")]
    NotATicketId,
}

/// Longest external identifier we accept (order ids, SKUs, storefront request ids).
pub const MAX_ID_LEN: usize = 128;

fn check_external_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let len = s.chars().count();
    if len > MAX_ID_LEN {
        return Err(IdError::TooLong {
            max: MAX_ID_LEN,
            len,
        });
    }
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err(IdError::BadCharacters);
    }
    Ok(())
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_external_id(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ID_LEN,
                    "pattern": "^\\S(.*\\S)?$"
                })
            }
        }
    };
}

external_id!(
    /// The storefront's unique id for one request: the deduplication key.
    RequestId
);
external_id!(
    /// The merchant's order id.
    OrderId
);
external_id!(
    /// The merchant's customer id.
    CustomerId
);
external_id!(
    /// An order line id, unique within its order.
    LineId
);
external_id!(
    /// A stock-keeping unit.
    Sku
);
external_id!(
    /// A merchant product category (`electronics`, `apparel`), the key of per-category policy.
    Category
);
external_id!(
    /// The payment provider that took the money (`stripe`, or the merchant's own label).
    PaymentProvider
);
external_id!(
    /// The payment provider's reference for the original charge (e.g. a Stripe PaymentIntent).
    PaymentReference
);

/// Our ticket id: `tkt_` + a ULID, so ids sort by creation time and are valid Step Functions
/// execution names (the execution name is the ticket id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketId(String);

impl TicketId {
    const PREFIX: &'static str = "tkt_";

    /// A new id for a ticket created at `at`; `entropy` makes ids created in the same
    /// millisecond distinct (pass random bits in production, fixed ones in tests).
    pub fn generate(at: Timestamp, entropy: u128) -> Self {
        let millis = u64::try_from(at.as_millisecond()).unwrap_or(0);
        let ulid = ulid::Ulid::from_parts(millis, entropy);
        TicketId(format!("{}{}", Self::PREFIX, ulid))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the ticket was created, recovered from the id.
    pub fn created_at(&self) -> Timestamp {
        let ulid = ulid::Ulid::from_string(&self.0[Self::PREFIX.len()..]).unwrap_or_default();
        Timestamp::from_millisecond(ulid.timestamp_ms() as i64).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl FromStr for TicketId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix(Self::PREFIX).ok_or(IdError::NotATicketId)?;
        let ulid = ulid::Ulid::from_string(rest).map_err(|_| IdError::NotATicketId)?;
        Ok(TicketId(format!("{}{}", Self::PREFIX, ulid)))
    }
}

impl TryFrom<String> for TicketId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TicketId> for String {
    fn from(id: TicketId) -> String {
        id.0
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for TicketId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TicketId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^tkt_[0-9A-HJKMNP-TV-Z]{26}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_sort_by_creation_time() {
        let early = TicketId::generate("2026-11-20T09:30:00Z".parse().unwrap(), u128::MAX);
        let late = TicketId::generate("2026-11-20T09:30:00.001Z".parse().unwrap(), 0);
        assert!(early < late);
        assert_eq!(
            late.created_at(),
            "2026-11-20T09:30:00.001Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn ticket_id_round_trips_through_its_text() {
        let id = TicketId::generate(Timestamp::UNIX_EPOCH, 42);
        assert_eq!(id.as_str().parse::<TicketId>().unwrap(), id);
        assert_eq!(id.as_str().len(), 30);
    }

    #[test]
    fn malformed_ticket_ids_are_rejected() {
        for bad in [
            "",
            "tkt_",
            "T-123",
            "tkt_01JDQ3",
            "tkt_01JDQ3ZZZZZZZZZZZZZZZZZZZZZ",
        ] {
            assert_eq!(bad.parse::<TicketId>(), Err(IdError::NotATicketId), "{bad}");
        }
    }

    #[test]
    fn external_ids_reject_empty_padded_control_and_long_values() {
        assert_eq!(OrderId::new(""), Err(IdError::Empty));
        assert_eq!(OrderId::new(" ORD-1"), Err(IdError::BadCharacters));
        assert_eq!(OrderId::new("ORD\n1"), Err(IdError::BadCharacters));
        assert_eq!(
            Sku::new("x".repeat(129)),
            Err(IdError::TooLong { max: 128, len: 129 })
        );
        assert_eq!(Sku::new("KB-87").unwrap().as_str(), "KB-87");
    }
}

//! The closed vocabularies of the after-sales process. Unknown values are rejected at the
//! boundary by serde, with the list of accepted values in the message.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name (`damaged_in_transit`).
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown value '{other}', expected one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

vocabulary!(
    /// Where the customer opened the request.
    Channel { Web = "web", App = "app", Hotline = "hotline", Chat = "chat", Email = "email", Social = "social" }
);

vocabulary!(
    /// What went wrong, as classified (the customer's claim is re-checked by `diagnose`).
    ProblemKind {
        QualityDefect = "quality_defect",
        DamagedInTransit = "damaged_in_transit",
        WrongItem = "wrong_item",
        MissingParts = "missing_parts",
        NotAsDescribed = "not_as_described",
        LateDelivery = "late_delivery",
        ChangedMind = "changed_mind",
        Misuse = "misuse",
        Other = "other",
    }
);

vocabulary!(
    /// The kind of an evidence attachment.
    EvidenceKind { Photo = "photo", Video = "video", Document = "document" }
);

vocabulary!(
    /// Who caused the problem; decides who pays return shipping and which department learns of it.
    Responsibility { Merchant = "merchant", Logistics = "logistics", Customer = "customer", Platform = "platform" }
);

vocabulary!(
    /// How a ticket can be resolved.
    ResolutionKind {
        Refund = "refund",
        ReturnRefund = "return_refund",
        Exchange = "exchange",
        Repair = "repair",
        Parts = "parts",
        PriceAdjustment = "price_adjustment",
        Coupon = "coupon",
        Reject = "reject",
    }
);

vocabulary!(
    /// What the customer may ask for (every resolution but a rejection).
    ExpectedResolution {
        Refund = "refund",
        ReturnRefund = "return_refund",
        Exchange = "exchange",
        Repair = "repair",
        Parts = "parts",
        PriceAdjustment = "price_adjustment",
        Coupon = "coupon",
    }
);

impl From<ExpectedResolution> for ResolutionKind {
    fn from(e: ExpectedResolution) -> Self {
        match e {
            ExpectedResolution::Refund => ResolutionKind::Refund,
            ExpectedResolution::ReturnRefund => ResolutionKind::ReturnRefund,
            ExpectedResolution::Exchange => ResolutionKind::Exchange,
            ExpectedResolution::Repair => ResolutionKind::Repair,
            ExpectedResolution::Parts => ResolutionKind::Parts,
            ExpectedResolution::PriceAdjustment => ResolutionKind::PriceAdjustment,
            ExpectedResolution::Coupon => ResolutionKind::Coupon,
        }
    }
}

vocabulary!(
    /// The merchant's loyalty tier for the customer; policy decides what each tier gets.
    #[derive(Default)]
    CustomerTier { #[default] Standard = "standard", Silver = "silver", Gold = "gold", Vip = "vip" }
);

vocabulary!(
    /// Languages we write to customers in.
    Locale { ZhCn = "zh-CN", En = "en" }
);

vocabulary!(
    /// The upstream department that owns a root cause and receives the feedback.
    Department {
        /// Quality and procurement: defects, not-as-described.
        Quality = "quality",
        /// Carriers and shipping: damage in transit, late delivery.
        Logistics = "logistics",
        /// Warehouse and packaging: wrong item, missing parts, packing damage.
        Warehouse = "warehouse",
        /// Customer-service training: complaints about how a case was handled.
        Service = "service",
    }
);

vocabulary!(
    /// What the warehouse found for a returned line.
    Disposition { Restock = "restock", Damaged = "damaged", WrongItem = "wrong_item", Missing = "missing" }
);

/// One piece of evidence: a photo, a video or a document, by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// An `https://` URL where the storefront keeps the file.
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_for_every_value() {
        for kind in ProblemKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ProblemKind>(&json).unwrap(), *kind);
            assert_eq!(kind.as_str().parse::<ProblemKind>().unwrap(), *kind);
        }
        assert_eq!(serde_json::to_string(&Locale::ZhCn).unwrap(), "\"zh-CN\"");
    }

    #[test]
    fn unknown_values_are_rejected_with_the_accepted_list() {
        let err = "teleport".parse::<Channel>().unwrap_err();
        assert!(
            err.contains("web, app, hotline, chat, email, social"),
            "{err}"
        );
        assert!(serde_json::from_str::<ResolutionKind>("\"refund_please\"").is_err());
    }
}

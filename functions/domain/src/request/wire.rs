//! How amounts, quantities and timestamps are read off the wire. Each has its own visitor so a
//! wrong value is refused in the storefront's terms ("must not be negative"), not in Rust's
//! ("expected i64").

use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Quantity;
use super::rules::MAX_URL_CHARS;
use crate::kinds::{
    Channel, CustomerTier, Evidence, EvidenceKind, ExpectedResolution, Locale, ProblemKind,
};
use crate::money::Amount;

/// A value echoed in a message: at most 40 characters, control characters replaced.
pub(super) fn shortened(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(40)
        .collect();
    if value.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// A closed vocabulary read from a JSON string only (serde_json would also take
/// `{"web": null}` for a unit variant).
pub(super) trait Vocabulary: Sized + Copy + 'static {
    const VALUES: &'static [Self];
    fn wire_name(self) -> &'static str;
}

macro_rules! vocabulary {
    ($($name:ty),+) => {
        $(impl Vocabulary for $name {
            const VALUES: &'static [Self] = <$name>::ALL;
            fn wire_name(self) -> &'static str {
                self.as_str()
            }
        })+
    };
}

vocabulary!(
    Channel,
    Locale,
    CustomerTier,
    ProblemKind,
    EvidenceKind,
    ExpectedResolution
);

fn wire_names<T: Vocabulary>() -> String {
    T::VALUES
        .iter()
        .map(|v| v.wire_name())
        .collect::<Vec<_>>()
        .join(", ")
}

struct VocabularyVisitor<T>(PhantomData<T>);

impl<T: Vocabulary> Visitor<'_> for VocabularyVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of: {}", wire_names::<T>())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        T::VALUES
            .iter()
            .copied()
            .find(|v| v.wire_name() == s)
            .ok_or_else(|| {
                E::custom(format!(
                    "unknown value '{}', expected one of: {}",
                    shortened(s),
                    wire_names::<T>()
                ))
            })
    }
}

pub(super) fn vocabulary<'de, D: Deserializer<'de>, T: Vocabulary>(d: D) -> Result<T, D::Error> {
    d.deserialize_str(VocabularyVisitor(PhantomData))
}

struct OptionalVocabularyVisitor<T>(PhantomData<T>);

impl<'de, T: Vocabulary> Visitor<'de> for OptionalVocabularyVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of: {}", wire_names::<T>())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        vocabulary(d).map(Some)
    }
}

/// An optional vocabulary value: absent or `null` is `None`.
pub(super) fn optional_vocabulary<'de, D: Deserializer<'de>, T: Vocabulary>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_option(OptionalVocabularyVisitor(PhantomData))
}

/// The shared [`Evidence`] as a request carries it, its `kind` read as a strict vocabulary.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestEvidence {
    #[serde(deserialize_with = "vocabulary")]
    kind: EvidenceKind,
    url: String,
}

/// `problem.evidence`: objects only, kinds from the vocabulary.
pub(super) fn evidence_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Evidence>, D::Error> {
    let items: Vec<RequestEvidence> = objects(d)?;
    Ok(items
        .into_iter()
        .map(|RequestEvidence { kind, url }| Evidence { kind, url })
        .collect())
}

/// i64::MAX as an f64 bound: JSON integers beyond u64 arrive as floats.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// A JSON number that is not a plain integer: why it cannot be a count of units or minor units.
fn refuse_float<E: de::Error>(v: f64, what: &str, max: &str) -> E {
    if !v.is_finite() || v.fract() != 0.0 {
        E::custom(format!("must be a whole number of {what}, not a decimal"))
    } else if v.abs() >= I64_LIMIT {
        if v < 0.0 {
            E::custom("must not be negative")
        } else {
            E::custom(format!("is too large: at most {max}"))
        }
    } else {
        E::custom(format!(
            "must be a whole number of {what} written without a decimal point or exponent"
        ))
    }
}

struct AmountVisitor;

impl Visitor<'_> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of minor units")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
        Amount::new(v).map_err(|_| E::custom(format!("must not be negative (got {v})")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
        i64::try_from(v)
            .ok()
            .and_then(|v| Amount::new(v).ok())
            .ok_or_else(|| E::custom(format!("is too large: at most {} minor units", i64::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
        Err(refuse_float(
            v,
            "minor units (e.g. 29900 for 299.00)",
            &format!("{} minor units", i64::MAX),
        ))
    }
}

/// An [`Amount`] in minor units: a JSON integer from 0 to i64::MAX.
pub(super) fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
    d.deserialize_i64(AmountVisitor)
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of units")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("must be at least 1 (got {v})"))),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        let n = u32::try_from(v)
            .map_err(|_| E::custom(format!("is too large: at most {} units", u32::MAX)))?;
        Quantity::new(n).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        Err(refuse_float(v, "units", &format!("{} units", u32::MAX)))
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_u32(QuantityVisitor)
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

/// A struct from a JSON object only: serde's derive would also take a positional array.
pub(super) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

struct ObjectSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ObjectSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        object(d)
    }
}

struct ObjectsVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectsVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(ObjectSeed(PhantomData))? {
            items.push(item);
        }
        Ok(items)
    }
}

/// A list of structs, each from a JSON object only.
pub(super) fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(ObjectsVisitor(PhantomData))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`: the RFC 3339 `date-time` production. Checked
/// before jiff parses, because jiff also accepts ISO 8601 forms RFC 3339 does not (no seconds,
/// basic format, bracketed time zones).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| {
        b.get(from..to)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    let date_time = digits(0, 4)
        && at(4, b"-")
        && digits(5, 7)
        && at(7, b"-")
        && digits(8, 10)
        && at(10, b"Tt")
        && digits(11, 13)
        && at(13, b":")
        && digits(14, 16)
        && at(16, b":")
        && digits(17, 19);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        let fraction = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&fraction) {
            return false;
        }
        i += 1 + fraction;
    }
    match b.get(i) {
        Some(b'Z' | b'z') => b.len() == i + 1,
        Some(b'+' | b'-') => {
            b.len() == i + 6 && digits(i + 1, i + 3) && at(i + 3, b":") && digits(i + 4, i + 6)
        }
        _ => false,
    }
}

const TIMESTAMP_HINT: &str =
    "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-20T09:30:00Z";

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
        if !is_rfc3339(s) {
            return Err(E::custom(TIMESTAMP_HINT));
        }
        s.parse::<Timestamp>()
            .map_err(|_| E::custom("is not a real date and time (RFC 3339)"))
    }
}

/// A [`Timestamp`] from RFC 3339 text with an offset, normalised to UTC.
pub(super) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    d.deserialize_str(TimestampVisitor)
}

struct OptionalTimestampVisitor;

impl<'de> Visitor<'de> for OptionalTimestampVisitor {
    type Value = Option<Timestamp>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        timestamp(d).map(Some)
    }
}

/// An optional [`Timestamp`]: absent or `null` is `None`.
pub(super) fn optional_timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Timestamp>, D::Error> {
    d.deserialize_option(OptionalTimestampVisitor)
}

/// The JSON Schema of a timestamp field: RFC 3339 `date-time` text. Schema only; values are
/// [`jiff::Timestamp`].
pub(super) struct Rfc3339;

impl JsonSchema for Rfc3339 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 timestamp with seconds and an offset (`Z` or `±HH:MM`), e.g. `2026-11-20T09:30:00Z`; stored in UTC."
        })
    }
}

/// Narrows the shared `Evidence` schema for requests: URLs are `https://` with a host and no
/// credentials, at most [`MAX_URL_CHARS`] characters (the parser enforces the same).
pub(super) fn https_evidence_urls(schema: &mut schemars::Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert(
            "properties".into(),
            serde_json::json!({
                "url": {
                    "type": "string",
                    "maxLength": MAX_URL_CHARS,
                    "pattern": HTTPS_URL_PATTERN
                }
            }),
        );
    }
}

/// `https://`, a host without credentials, then optionally a path, query or fragment; no spaces.
pub(super) const HTTPS_URL_PATTERN: &str = r"^https://[^\s/?#@]+([/?#]\S*)?$";

#[cfg(test)]
mod tests {
    use super::is_rfc3339;

    #[test]
    fn rfc3339_shapes_are_recognised() {
        for good in [
            "2026-11-20T09:30:00Z",
            "2026-11-20t09:30:00z",
            "2026-11-20T09:30:00.123456789+08:00",
            "2026-11-20T09:30:00-05:30",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "",
            "2026-11-20",
            "2026-11-20T09:30Z",
            "2026-11-20T09:30:00",
            "2026-11-20 09:30:00Z",
            "20261120T093000Z",
            "2026-11-20T09:30:00.Z",
            "2026-11-20T09:30:00.1234567890Z",
            "2026-11-20T09:30:00+0800",
            "2026-11-20T09:30:00+08:00[Asia/Shanghai]",
            "2026-11-20T09:30:00Zjunk",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}

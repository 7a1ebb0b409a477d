//! Localised message templates and their renderer.
//!
//! Templates are data (`templates/<locale>.toml`, embedded at build time): a `[fragments]`
//! table (greeting, date format, list pieces), a `[resolution_kinds]` table (option labels)
//! and one `[milestones.<wire name>]` table per [`Milestone`] with `subject` and `body`.
//! `{name}` inserts a value, `{{` and `}}` write literal braces. Inserted values are never
//! scanned again, so a customer's name cannot inject a placeholder.
//!
//! A catalog is checked completely when it loads: every milestone present, no unknown table,
//! every template using exactly the placeholders its milestone declares
//! ([`Milestone::placeholders`]), every fragment using only its own variables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use aftersales_domain::{Locale, Money, ResolutionKind, TicketId};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::milestone::{Milestone, Placeholder};

const EN: &str = include_str!("../../../templates/en.toml");
const ZH_CN: &str = include_str!("../../../templates/zh-CN.toml");

/// IANA names of the zone Chinese customers call 北京时间 (Beijing time).
const BEIJING_TIME_ZONES: &[&str] = &[
    "Asia/Shanghai",
    "Asia/Chongqing",
    "Asia/Chungking",
    "Asia/Harbin",
    "PRC",
];

/// Everything a message may say. Fields a milestone does not use are ignored; a field it uses
/// but that is missing is a [`RenderError::MissingValue`].
#[derive(Debug, Clone, PartialEq)]
pub struct MessageContext {
    pub ticket_id: TicketId,
    /// Used in the greeting when present and not blank.
    pub first_name: Option<String>,
    /// Refunded amount, coupon value or price adjustment.
    pub amount: Option<Money>,
    /// The deadline or promised time the message mentions.
    pub due: Option<Timestamp>,
    /// The customer's time zone for `due`; UTC when absent.
    pub time_zone: Option<TimeZone>,
    /// The proposal's options, best first (rendered numbered from 1, like their ids `opt-1`…).
    pub options: Vec<OptionSummary>,
    /// Why the request was rejected, already in the customer's language.
    pub reasons: Vec<String>,
    /// A ticket-scoped link (the survey page). Opening it records nothing: the page POSTs.
    pub link: Option<String>,
    pub return_shipment: Option<ReturnShipment>,
    /// An exchange's price difference: positive is due from the customer, negative refunded,
    /// zero for the same price.
    pub price_difference: Option<Money>,
}

impl MessageContext {
    /// A context with only the ticket id; set the other fields the milestone needs.
    pub fn new(ticket_id: TicketId) -> Self {
        MessageContext {
            ticket_id,
            first_name: None,
            amount: None,
            due: None,
            time_zone: None,
            options: Vec::new(),
            reasons: Vec::new(),
            link: None,
            return_shipment: None,
            price_difference: None,
        }
    }
}

/// One option of a proposal, as the customer sees it in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSummary {
    pub kind: ResolutionKind,
    /// Paid to the customer (refund, adjustment) or the coupon's value.
    pub amount: Option<Money>,
    /// What the option costs the customer, when anything.
    pub customer_cost: Option<Money>,
}

/// Where and how the customer sends the item back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnShipment {
    /// The return address, as it should be written on the parcel.
    pub address: String,
    pub postage: ReturnPostage,
}

/// Who pays return shipping, as the customer must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPostage {
    /// A prepaid label at the merchant's cost.
    Prepaid,
    /// A label whose fee is deducted from the refund.
    LabelFeeDeducted { fee: Money },
    /// The customer ships with a carrier of their choice, at their cost.
    CustomerArranged,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMessage {
    pub subject: String,
    pub body: String,
}

/// Why a catalog of templates was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the templates are not valid TOML: {0}")]
    Toml(String),
    #[error("no template for milestone '{0}'")]
    MissingTemplate(Milestone),
    #[error("a template for '{0}', which is not a milestone")]
    UnknownMilestone(String),
    #[error("no label for resolution kind '{0}'")]
    MissingResolutionLabel(ResolutionKind),
    #[error("{at}: unknown placeholder {{{name}}}")]
    UnknownPlaceholder { at: String, name: String },
    #[error("{at}: uses {{{placeholder}}}, which this milestone does not provide")]
    UnexpectedPlaceholder {
        at: String,
        placeholder: Placeholder,
    },
    #[error("milestone '{milestone}' must use {{{placeholder}}} in its subject or body")]
    UnusedPlaceholder {
        milestone: Milestone,
        placeholder: Placeholder,
    },
    #[error("{at}: unbalanced brace at byte {offset} (write {{{{ or }}}} for a literal brace)")]
    UnbalancedBrace { at: String, offset: usize },
    #[error("fragments.due_format is not a valid strftime format: {0}")]
    DueFormat(String),
}

/// Why a message could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("milestone '{milestone}' needs {{{placeholder}}}, which the context does not provide")]
    MissingValue {
        milestone: Milestone,
        placeholder: Placeholder,
    },
    #[error("the catalog has no template for '{0}'")]
    NoTemplate(Milestone),
    #[error("the built-in {locale} templates are broken: {error}")]
    BrokenCatalog {
        locale: Locale,
        error: TemplateError,
    },
    #[error("cannot write the due time: {0}")]
    DueTime(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment<V> {
    Text(String),
    Value(V),
}

/// A template split into literal text and values, e.g. `Hello {first_name},`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed<V>(Vec<Segment<V>>);

impl<V: Copy> Parsed<V> {
    fn parse(
        at: &str,
        text: &str,
        resolve: impl Fn(&str) -> Result<V, TemplateError>,
    ) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                offset += i + 2;
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                offset += i + 2;
                rest = after;
            } else if tail.starts_with('}') {
                return Err(TemplateError::UnbalancedBrace {
                    at: at.to_owned(),
                    offset: offset + i,
                });
            } else {
                let close = tail
                    .find('}')
                    .ok_or_else(|| TemplateError::UnbalancedBrace {
                        at: at.to_owned(),
                        offset: offset + i,
                    })?;
                let name = &tail[1..close];
                if name.contains('{') {
                    return Err(TemplateError::UnbalancedBrace {
                        at: at.to_owned(),
                        offset: offset + i,
                    });
                }
                if !literal.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Value(resolve(name)?));
                offset += i + close + 1;
                rest = &tail[close + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Parsed(segments))
    }

    fn values(&self) -> impl Iterator<Item = V> + '_ {
        self.0.iter().filter_map(|s| match s {
            Segment::Value(v) => Some(*v),
            Segment::Text(_) => None,
        })
    }

    fn fill<E>(&self, mut value: impl FnMut(V) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Value(v) => out.push_str(&value(*v)?),
            }
        }
        Ok(out)
    }
}

/// The variables of fragments, each fragment allowing only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FragmentVar {
    FirstName,
    Zone,
    Amount,
    Cost,
    Fee,
}

impl FragmentVar {
    fn name(self) -> &'static str {
        match self {
            FragmentVar::FirstName => "first_name",
            FragmentVar::Zone => "zone",
            FragmentVar::Amount => "amount",
            FragmentVar::Cost => "cost",
            FragmentVar::Fee => "fee",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    fragments: FragmentsFile,
    resolution_kinds: BTreeMap<String, String>,
    milestones: BTreeMap<String, TemplateFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FragmentsFile {
    greeting: String,
    greeting_named: String,
    due_format: String,
    zone_suffix: String,
    beijing_time: String,
    option_amount: String,
    option_cost: String,
    postage_prepaid: String,
    postage_label_fee: String,
    postage_customer_arranged: String,
    exchange_same_price: String,
    exchange_amount_due: String,
    exchange_refund_due: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    subject: String,
    body: String,
}

#[derive(Debug, Clone)]
struct Fragments {
    greeting: String,
    greeting_named: Parsed<FragmentVar>,
    due_format: String,
    zone_suffix: Parsed<FragmentVar>,
    beijing_time: String,
    option_amount: Parsed<FragmentVar>,
    option_cost: Parsed<FragmentVar>,
    postage_prepaid: String,
    postage_label_fee: Parsed<FragmentVar>,
    postage_customer_arranged: String,
    exchange_same_price: String,
    exchange_amount_due: Parsed<FragmentVar>,
    exchange_refund_due: Parsed<FragmentVar>,
}

#[derive(Debug, Clone)]
struct Template {
    subject: Parsed<Placeholder>,
    body: Parsed<Placeholder>,
}

/// The checked templates of one language.
#[derive(Debug, Clone)]
pub struct TemplateCatalog {
    fragments: Fragments,
    resolution_kinds: BTreeMap<ResolutionKind, String>,
    milestones: BTreeMap<Milestone, Template>,
}

static BUILTIN_EN: LazyLock<Result<TemplateCatalog, TemplateError>> =
    LazyLock::new(|| TemplateCatalog::from_toml(EN));
static BUILTIN_ZH_CN: LazyLock<Result<TemplateCatalog, TemplateError>> =
    LazyLock::new(|| TemplateCatalog::from_toml(ZH_CN));

/// Renders `milestone` in `locale` with the built-in templates.
pub fn render(
    milestone: Milestone,
    locale: Locale,
    ctx: &MessageContext,
) -> Result<RenderedMessage, RenderError> {
    TemplateCatalog::builtin(locale)
        .map_err(|error| RenderError::BrokenCatalog { locale, error })?
        .render(milestone, ctx)
}

fn fragment(
    at: &str,
    text: &str,
    allowed: &[FragmentVar],
) -> Result<Parsed<FragmentVar>, TemplateError> {
    Parsed::parse(at, text, |name| {
        allowed
            .iter()
            .copied()
            .find(|v| v.name() == name)
            .ok_or_else(|| TemplateError::UnknownPlaceholder {
                at: at.to_owned(),
                name: name.to_owned(),
            })
    })
}

fn plain(at: &str, text: String) -> Result<String, TemplateError> {
    Parsed::<FragmentVar>::parse(at, &text, |name| {
        Err(TemplateError::UnknownPlaceholder {
            at: at.to_owned(),
            name: name.to_owned(),
        })
    })?
    .fill(|_| Ok::<_, TemplateError>(String::new()))
}

fn milestone_template(
    milestone: Milestone,
    part: &str,
    text: &str,
) -> Result<Parsed<Placeholder>, TemplateError> {
    let at = format!("milestones.{milestone}.{part}");
    Parsed::parse(&at, text, |name| {
        let placeholder =
            Placeholder::from_name(name).ok_or_else(|| TemplateError::UnknownPlaceholder {
                at: at.clone(),
                name: name.to_owned(),
            })?;
        if milestone.placeholders().contains(&placeholder) {
            Ok(placeholder)
        } else {
            Err(TemplateError::UnexpectedPlaceholder {
                at: at.clone(),
                placeholder,
            })
        }
    })
}

impl TemplateCatalog {
    /// The built-in catalog of `locale` (parsed and checked once).
    pub fn builtin(locale: Locale) -> Result<&'static TemplateCatalog, TemplateError> {
        let catalog = match locale {
            Locale::En => &*BUILTIN_EN,
            Locale::ZhCn => &*BUILTIN_ZH_CN,
        };
        catalog.as_ref().map_err(Clone::clone)
    }

    /// Parses and checks a catalog (format in the module docs).
    pub fn from_toml(text: &str) -> Result<TemplateCatalog, TemplateError> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| TemplateError::Toml(e.to_string()))?;
        let f = file.fragments;
        use FragmentVar::*;
        let fragments = Fragments {
            greeting: plain("fragments.greeting", f.greeting)?,
            greeting_named: fragment("fragments.greeting_named", &f.greeting_named, &[FirstName])?,
            due_format: f.due_format,
            zone_suffix: fragment("fragments.zone_suffix", &f.zone_suffix, &[Zone])?,
            beijing_time: plain("fragments.beijing_time", f.beijing_time)?,
            option_amount: fragment("fragments.option_amount", &f.option_amount, &[Amount])?,
            option_cost: fragment("fragments.option_cost", &f.option_cost, &[Cost])?,
            postage_prepaid: plain("fragments.postage_prepaid", f.postage_prepaid)?,
            postage_label_fee: fragment(
                "fragments.postage_label_fee",
                &f.postage_label_fee,
                &[Fee],
            )?,
            postage_customer_arranged: plain(
                "fragments.postage_customer_arranged",
                f.postage_customer_arranged,
            )?,
            exchange_same_price: plain("fragments.exchange_same_price", f.exchange_same_price)?,
            exchange_amount_due: fragment(
                "fragments.exchange_amount_due",
                &f.exchange_amount_due,
                &[Amount],
            )?,
            exchange_refund_due: fragment(
                "fragments.exchange_refund_due",
                &f.exchange_refund_due,
                &[Amount],
            )?,
        };
        jiff::fmt::strtime::format(&fragments.due_format, Timestamp::UNIX_EPOCH)
            .map_err(|e| TemplateError::DueFormat(e.to_string()))?;

        let mut resolution_kinds = BTreeMap::new();
        for (name, label) in file.resolution_kinds {
            let kind: ResolutionKind =
                name.parse()
                    .map_err(|_| TemplateError::UnknownPlaceholder {
                        at: "resolution_kinds".to_owned(),
                        name: name.clone(),
                    })?;
            let label = plain(&format!("resolution_kinds.{name}"), label)?;
            resolution_kinds.insert(kind, label);
        }
        if let Some(kind) = ResolutionKind::ALL
            .iter()
            .find(|k| !resolution_kinds.contains_key(*k))
        {
            return Err(TemplateError::MissingResolutionLabel(*kind));
        }

        let mut milestones = BTreeMap::new();
        for (name, template) in file.milestones {
            let milestone: Milestone = name
                .parse()
                .map_err(|_| TemplateError::UnknownMilestone(name.clone()))?;
            let template = Template {
                subject: milestone_template(milestone, "subject", &template.subject)?,
                body: milestone_template(milestone, "body", &template.body)?,
            };
            let used: BTreeSet<Placeholder> = template
                .subject
                .values()
                .chain(template.body.values())
                .collect();
            if let Some(placeholder) = milestone.placeholders().iter().find(|p| !used.contains(*p))
            {
                return Err(TemplateError::UnusedPlaceholder {
                    milestone,
                    placeholder: *placeholder,
                });
            }
            milestones.insert(milestone, template);
        }
        if let Some(missing) = Milestone::ALL.iter().find(|m| !milestones.contains_key(*m)) {
            return Err(TemplateError::MissingTemplate(*missing));
        }

        Ok(TemplateCatalog {
            fragments,
            resolution_kinds,
            milestones,
        })
    }

    /// Renders `milestone` with the values in `ctx`.
    pub fn render(
        &self,
        milestone: Milestone,
        ctx: &MessageContext,
    ) -> Result<RenderedMessage, RenderError> {
        let template = self
            .milestones
            .get(&milestone)
            .ok_or(RenderError::NoTemplate(milestone))?;
        let mut values = BTreeMap::new();
        for placeholder in milestone.placeholders() {
            let value = self
                .value(*placeholder, ctx)?
                .ok_or(RenderError::MissingValue {
                    milestone,
                    placeholder: *placeholder,
                })?;
            values.insert(*placeholder, value);
        }
        let lookup = |p: Placeholder| {
            values.get(&p).cloned().ok_or(RenderError::MissingValue {
                milestone,
                placeholder: p,
            })
        };
        Ok(RenderedMessage {
            subject: template.subject.fill(lookup)?,
            body: template.body.fill(lookup)?,
        })
    }

    /// The text for one placeholder, or `None` when `ctx` lacks it.
    fn value(
        &self,
        placeholder: Placeholder,
        ctx: &MessageContext,
    ) -> Result<Option<String>, RenderError> {
        let f = &self.fragments;
        Ok(match placeholder {
            Placeholder::TicketId => Some(ctx.ticket_id.to_string()),
            Placeholder::Greeting => Some(self.greeting(ctx.first_name.as_deref())),
            Placeholder::Amount => ctx.amount.map(|m| m.to_string()),
            Placeholder::Due => match ctx.due {
                Some(due) => Some(self.due(due, ctx.time_zone.as_ref())?),
                None => None,
            },
            Placeholder::Options => (!ctx.options.is_empty()).then(|| self.options(&ctx.options)),
            Placeholder::Reasons => (!ctx.reasons.is_empty()).then(|| {
                ctx.reasons
                    .iter()
                    .map(|r| format!("- {}", one_line(r)))
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            Placeholder::Link => ctx.link.as_deref().map(one_line),
            Placeholder::ReturnAddress => ctx
                .return_shipment
                .as_ref()
                .map(|r| r.address.trim().to_owned()),
            Placeholder::ReturnPostage => ctx.return_shipment.as_ref().map(|r| match r.postage {
                ReturnPostage::Prepaid => f.postage_prepaid.clone(),
                ReturnPostage::CustomerArranged => f.postage_customer_arranged.clone(),
                ReturnPostage::LabelFeeDeducted { fee } => {
                    fill_fragment(&f.postage_label_fee, FragmentVar::Fee, &fee.to_string())
                }
            }),
            Placeholder::PriceDifference => ctx.price_difference.map(|d| {
                let amount = Money::new(d.minor.saturating_abs(), d.currency).to_string();
                match d.minor.signum() {
                    1 => fill_fragment(&f.exchange_amount_due, FragmentVar::Amount, &amount),
                    -1 => fill_fragment(&f.exchange_refund_due, FragmentVar::Amount, &amount),
                    _ => f.exchange_same_price.clone(),
                }
            }),
        })
    }

    fn greeting(&self, first_name: Option<&str>) -> String {
        match first_name.map(one_line).filter(|n| !n.is_empty()) {
            Some(name) => fill_fragment(
                &self.fragments.greeting_named,
                FragmentVar::FirstName,
                &name,
            ),
            None => self.fragments.greeting.clone(),
        }
    }

    fn due(&self, due: Timestamp, time_zone: Option<&TimeZone>) -> Result<String, RenderError> {
        let tz = time_zone.cloned().unwrap_or(TimeZone::UTC);
        let zoned = due.to_zoned_datetime(tz.clone());
        let when = jiff::fmt::strtime::format(&self.fragments.due_format, &zoned)
            .map_err(|e| RenderError::DueTime(e.to_string()))?;
        let zone = match tz.iana_name() {
            Some(name) if BEIJING_TIME_ZONES.contains(&name) => self.fragments.beijing_time.clone(),
            _ if tz == TimeZone::UTC || tz.iana_name().is_some_and(is_utc_name) => "UTC".into(),
            _ => {
                let offset = jiff::fmt::strtime::format("%:z", &zoned)
                    .map_err(|e| RenderError::DueTime(e.to_string()))?;
                format!("UTC{offset}")
            }
        };
        Ok(format!(
            "{when}{}",
            fill_fragment(&self.fragments.zone_suffix, FragmentVar::Zone, &zone)
        ))
    }

    fn options(&self, options: &[OptionSummary]) -> String {
        let f = &self.fragments;
        options
            .iter()
            .enumerate()
            .map(|(i, option)| {
                let label = self
                    .resolution_kinds
                    .get(&option.kind)
                    .map_or(option.kind.as_str(), String::as_str);
                let mut line = format!("{}. {label}", i + 1);
                if let Some(amount) = option.amount {
                    line.push_str(&fill_fragment(
                        &f.option_amount,
                        FragmentVar::Amount,
                        &amount.to_string(),
                    ));
                }
                if let Some(cost) = option.customer_cost.filter(|c| !c.is_zero()) {
                    line.push_str(&fill_fragment(
                        &f.option_cost,
                        FragmentVar::Cost,
                        &cost.to_string(),
                    ));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Fills a fragment's single variable (checked at load to be its only one).
fn fill_fragment(fragment: &Parsed<FragmentVar>, var: FragmentVar, value: &str) -> String {
    fragment
        .fill(|v| {
            Ok::<_, std::convert::Infallible>(if v == var {
                value.to_owned()
            } else {
                String::new()
            })
        })
        .unwrap_or_else(|never| match never {})
}

fn is_utc_name(name: &str) -> bool {
    matches!(
        name,
        "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Etc/Zulu" | "Zulu"
    )
}

/// Caller-supplied text that sits inside a line: control characters (line breaks included)
/// become spaces, so a value cannot forge extra lines of the message.
fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

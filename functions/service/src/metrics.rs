//! Business metrics as CloudWatch Embedded Metric Format (`docs/metrics.md`): one JSON line per
//! business event on stdout, from which CloudWatch extracts the metrics. No API call, so a metric
//! can neither slow nor fail a request.
//!
//! Handlers call [`emit`]. The process-wide [`Metrics`] is read once from `METRICS_NAMESPACE` and
//! `METRICS_STACK` on first use; without `METRICS_NAMESPACE` (local runs, tests) metrics are off.
//! Tests run a handler inside [`scoped`] with a [`CapturedMetrics`] sink to see what it emitted.
//!
//! Dimension values come only from closed vocabularies ([`Dimension`]): never an id or free text.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use aftersales_domain::{Channel, Currency, Department, Money, ProblemKind, ResolutionKind};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::config::{ConfigError, optional_env};
use crate::handlers::steps::execute_refund::RefundStep;

pub const NAMESPACE_ENV: &str = "METRICS_NAMESPACE";
pub const STACK_ENV: &str = "METRICS_STACK";

/// Where the metrics go and under which stack they are kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `METRICS_NAMESPACE` (`Aftersales` in the template).
    pub namespace: String,
    /// `METRICS_STACK`: the value of the `Stack` dimension.
    pub stack: String,
}

impl MetricsConfig {
    /// `None` when `METRICS_NAMESPACE` is not set: metrics are off. With it, `METRICS_STACK` is
    /// required, so figures of several stacks never mix.
    pub fn from_env() -> Result<Option<MetricsConfig>, ConfigError> {
        let Some(namespace) = optional_env(NAMESPACE_ENV)? else {
            return Ok(None);
        };
        let stack = optional_env(STACK_ENV)?.ok_or_else(|| ConfigError::Missing {
            name: STACK_ENV.to_owned(),
        })?;
        Ok(Some(MetricsConfig { namespace, stack }))
    }
}

/// Where EMF lines are written.
pub trait MetricSink: Send + Sync {
    fn write_line(&self, line: &str);
}

/// Standard output, one whole line per write (Lambda ships it to the log group).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl MetricSink for StdoutSink {
    fn write_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // Best effort: losing a metric line must never fail the business step.
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    }
}

/// Keeps every line in memory (tests, the local stack).
#[derive(Debug, Default, Clone)]
pub struct CapturedMetrics(Arc<Mutex<Vec<String>>>);

impl CapturedMetrics {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every line parsed as JSON (a line that is not JSON shows as `Value::Null`).
    pub fn documents(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect()
    }

    /// The metric names of every line, in order (`TicketsReceived`...).
    pub fn metric_names(&self) -> Vec<String> {
        self.documents().iter().flat_map(metric_names).collect()
    }
}

impl MetricSink for CapturedMetrics {
    fn write_line(&self, line: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_owned());
    }
}

/// A configured destination for business metrics, or none (metrics off).
#[derive(Clone)]
pub struct Metrics {
    target: Option<(Arc<MetricsConfig>, Arc<dyn MetricSink>)>,
}

impl Default for Metrics {
    /// Metrics off.
    fn default() -> Self {
        Metrics::disabled()
    }
}

impl Metrics {
    pub fn new(config: MetricsConfig, sink: Arc<dyn MetricSink>) -> Metrics {
        Metrics {
            target: Some((Arc::new(config), sink)),
        }
    }

    pub fn disabled() -> Metrics {
        Metrics { target: None }
    }

    /// Standard output with the configuration from the environment; off (with one warning)
    /// when that configuration is unusable.
    pub fn from_env() -> Metrics {
        match MetricsConfig::from_env() {
            Ok(Some(config)) => Metrics::new(config, Arc::new(StdoutSink)),
            Ok(None) => Metrics::disabled(),
            Err(error) => {
                tracing::warn!(%error, "business metrics are off");
                Metrics::disabled()
            }
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Writes `event` as one EMF line, stamped `at`.
    pub fn emit(&self, at: Timestamp, event: &BusinessEvent) {
        if let Some((config, sink)) = &self.target {
            sink.write_line(&emf_document(config, at, event).to_string());
        }
    }
}

static PROCESS: OnceLock<Metrics> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Metrics;
}

/// The process-wide metrics, configured from the environment the first time they are needed.
pub fn process() -> &'static Metrics {
    PROCESS.get_or_init(Metrics::from_env)
}

/// Runs `future` with `metrics` in place of the process-wide ones (tests).
pub async fn scoped<F: Future>(metrics: Metrics, future: F) -> F::Output {
    SCOPED.scope(metrics, future).await
}

/// Emits `event` through the scoped metrics, if any, otherwise the process-wide ones.
pub fn emit(at: Timestamp, event: &BusinessEvent) {
    if SCOPED.try_with(|m| m.emit(at, event)).is_err() {
        process().emit(at, event);
    }
}

/// How a ticket ended, for `TicketsClosed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Resolved,
    Rejected,
    ClosedUnanswered,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Resolved => "resolved",
            Outcome::Rejected => "rejected",
            Outcome::ClosedUnanswered => "closed_unanswered",
        }
    }
}

/// A dimension beside `Stack`. Every value is from a closed vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Channel(Channel),
    ProblemKind(ProblemKind),
    RootCause(ProblemKind),
    Resolution(ResolutionKind),
    Outcome(Outcome),
    Step(RefundStep),
    Currency(Currency),
    Department(Department),
}

impl Dimension {
    pub const fn name(self) -> &'static str {
        match self {
            Dimension::Channel(_) => "Channel",
            Dimension::ProblemKind(_) => "ProblemKind",
            Dimension::RootCause(_) => "RootCause",
            Dimension::Resolution(_) => "Resolution",
            Dimension::Outcome(_) => "Outcome",
            Dimension::Step(_) => "Step",
            Dimension::Currency(_) => "Currency",
            Dimension::Department(_) => "Department",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Dimension::Channel(v) => v.as_str(),
            Dimension::ProblemKind(v) | Dimension::RootCause(v) => v.as_str(),
            Dimension::Resolution(v) => v.as_str(),
            Dimension::Outcome(v) => v.as_str(),
            Dimension::Step(v) => v.as_str(),
            Dimension::Currency(v) => v.code(),
            Dimension::Department(v) => v.as_str(),
        }
    }
}

/// CloudWatch units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    None,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// One metric of an event: its value and its dimension sets (each set also starts with
/// `Stack`; an empty set is `[Stack]` alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: i64,
    pub sets: Vec<Vec<Dimension>>,
}

/// A business event worth counting (the table in `docs/metrics.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusinessEvent {
    /// `accept` stored a new ticket.
    TicketReceived {
        channel: Channel,
        problem_kind: ProblemKind,
    },
    /// `notify` sent the first answer after the acknowledgement.
    FirstResponse { after: SignedDuration },
    /// `notify` recorded `resolved`: time to resolution, closed as resolved.
    Resolved {
        resolution: ResolutionKind,
        after: SignedDuration,
    },
    /// `notify` closed a ticket without a resolution.
    ClosedWithout { outcome: Outcome },
    /// `execute-refund`: the gateway confirmed a refund now (not a replay).
    RefundIssued { step: RefundStep, amount: Money },
    /// `survey` recorded an answered survey.
    SurveyScored {
        score: u8,
        root_cause: ProblemKind,
        department: Department,
    },
    /// `survey` recorded a survey that went unanswered.
    SurveyUnanswered,
    /// `survey` asked for a follow-up on a low score.
    LowScoreFollowUp { root_cause: ProblemKind },
}

fn count(name: &'static str, sets: Vec<Vec<Dimension>>) -> Metric {
    Metric {
        name,
        unit: Unit::Count,
        value: 1,
        sets,
    }
}

fn seconds(after: SignedDuration) -> i64 {
    after.as_secs().max(0)
}

impl BusinessEvent {
    /// The metrics this event emits, as `docs/metrics.md` lists them.
    pub fn metrics(&self) -> Vec<Metric> {
        use Dimension as D;
        match *self {
            BusinessEvent::TicketReceived {
                channel,
                problem_kind,
            } => vec![count(
                "TicketsReceived",
                vec![
                    vec![],
                    vec![D::Channel(channel)],
                    vec![D::ProblemKind(problem_kind)],
                ],
            )],
            BusinessEvent::FirstResponse { after } => vec![Metric {
                name: "TimeToFirstResponse",
                unit: Unit::Seconds,
                value: seconds(after),
                sets: vec![vec![]],
            }],
            BusinessEvent::Resolved { resolution, after } => vec![
                Metric {
                    name: "TimeToResolution",
                    unit: Unit::Seconds,
                    value: seconds(after),
                    sets: vec![vec![], vec![D::Resolution(resolution)]],
                },
                count(
                    "TicketsClosed",
                    vec![vec![], vec![D::Outcome(Outcome::Resolved)]],
                ),
                count(
                    "TicketsResolved",
                    vec![vec![], vec![D::Resolution(resolution)]],
                ),
            ],
            BusinessEvent::ClosedWithout { outcome } => {
                vec![count(
                    "TicketsClosed",
                    vec![vec![], vec![D::Outcome(outcome)]],
                )]
            }
            BusinessEvent::RefundIssued { step, amount } => vec![
                count("RefundsIssued", vec![vec![], vec![D::Step(step)]]),
                Metric {
                    name: "RefundedAmount",
                    unit: Unit::None,
                    value: amount.minor,
                    sets: vec![vec![D::Currency(amount.currency)]],
                },
            ],
            BusinessEvent::SurveyScored {
                score,
                root_cause,
                department,
            } => vec![Metric {
                name: "SurveyScore",
                unit: Unit::None,
                value: i64::from(score),
                sets: vec![
                    vec![],
                    vec![D::RootCause(root_cause)],
                    vec![D::Department(department)],
                ],
            }],
            BusinessEvent::SurveyUnanswered => vec![count("SurveysUnanswered", vec![vec![]])],
            BusinessEvent::LowScoreFollowUp { root_cause } => {
                vec![count(
                    "LowScoreFollowUps",
                    vec![vec![D::RootCause(root_cause)]],
                )]
            }
        }
    }
}

/// The EMF document of `event`: one metric directive per metric (their dimension sets differ),
/// every dimension and metric value a top-level member.
pub fn emf_document(config: &MetricsConfig, at: Timestamp, event: &BusinessEvent) -> Value {
    let mut members = Map::new();
    let mut directives = Vec::new();
    members.insert("Stack".into(), config.stack.clone().into());
    for metric in event.metrics() {
        let sets: Vec<Vec<&str>> = metric
            .sets
            .iter()
            .map(|set| {
                std::iter::once("Stack")
                    .chain(set.iter().map(|d| d.name()))
                    .collect()
            })
            .collect();
        for dimension in metric.sets.iter().flatten() {
            members.insert(dimension.name().into(), dimension.value().into());
        }
        members.insert(metric.name.into(), metric.value.into());
        directives.push(json!({
            "Namespace": config.namespace,
            "Dimensions": sets,
            "Metrics": [{"Name": metric.name, "Unit": metric.unit.as_str()}],
        }));
    }
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({"Timestamp": at.as_millisecond(), "CloudWatchMetrics": directives}),
    );
    document.extend(members);
    Value::Object(document)
}

fn metric_names(document: &Value) -> Vec<String> {
    document["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["Metrics"].as_array().into_iter().flatten())
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect()
}

/// The units CloudWatch accepts in a metric definition.
const CLOUDWATCH_UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks `document` against the EMF specification's rules (the `_aws` metadata, the metric
/// directives, and every referenced dimension and metric as a top-level member), so tests can
/// tell a line CloudWatch would reject. The error names the member at fault.
pub fn check_emf(document: &Value) -> Result<(), String> {
    let root = document
        .as_object()
        .ok_or("the document is not an object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("_aws must be an object")?;
    if !aws.get("Timestamp").is_some_and(Value::is_u64) {
        return Err("_aws.Timestamp must be a non-negative integer (epoch milliseconds)".into());
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics must be an array")?;
    if directives.is_empty() {
        return Err("_aws.CloudWatchMetrics must hold a directive".into());
    }
    for (i, directive) in directives.iter().enumerate() {
        let at = format!("_aws.CloudWatchMetrics[{i}]");
        let namespace = directive["Namespace"]
            .as_str()
            .ok_or(format!("{at}.Namespace must be a string"))?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err(format!("{at}.Namespace must be 1 to 255 characters"));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .ok_or(format!("{at}.Dimensions must be an array"))?;
        for (j, set) in sets.iter().enumerate() {
            let set = set
                .as_array()
                .ok_or(format!("{at}.Dimensions[{j}] must be an array"))?;
            if set.len() > 30 {
                return Err(format!("{at}.Dimensions[{j}] has more than 30 dimensions"));
            }
            for name in set {
                let name = name
                    .as_str()
                    .ok_or(format!("{at}.Dimensions[{j}] must hold strings"))?;
                let value = root.get(name).and_then(Value::as_str).ok_or(format!(
                    "dimension {name} must be a top-level string member"
                ))?;
                if value.is_empty() || value.len() > 1024 {
                    return Err(format!("dimension {name} must be 1 to 1024 characters"));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or(format!("{at}.Metrics must be an array"))?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err(format!("{at}.Metrics must hold 1 to 100 metrics"));
        }
        for (k, metric) in metrics.iter().enumerate() {
            let name = metric["Name"]
                .as_str()
                .filter(|n| !n.is_empty() && n.len() <= 1024)
                .ok_or(format!(
                    "{at}.Metrics[{k}].Name must be 1 to 1024 characters"
                ))?;
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().unwrap_or_default();
                if !CLOUDWATCH_UNITS.contains(&unit) {
                    return Err(format!(
                        "{at}.Metrics[{k}].Unit '{unit}' is not a CloudWatch unit"
                    ));
                }
            }
            if !root.get(name).is_some_and(Value::is_number) {
                return Err(format!("metric {name} must be a top-level number"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MetricsConfig {
        MetricsConfig {
            namespace: "Aftersales".into(),
            stack: "aftersales".into(),
        }
    }

    fn at() -> Timestamp {
        Timestamp::from_second(1_795_000_000).unwrap()
    }

    fn every_event() -> Vec<BusinessEvent> {
        let cny: Currency = "CNY".parse().unwrap();
        vec![
            BusinessEvent::TicketReceived {
                channel: Channel::Web,
                problem_kind: ProblemKind::DamagedInTransit,
            },
            BusinessEvent::FirstResponse {
                after: SignedDuration::from_secs(90),
            },
            BusinessEvent::Resolved {
                resolution: ResolutionKind::Refund,
                after: SignedDuration::from_hours(5),
            },
            BusinessEvent::ClosedWithout {
                outcome: Outcome::ClosedUnanswered,
            },
            BusinessEvent::RefundIssued {
                step: RefundStep::ReturnRefund,
                amount: Money::new(29900, cny),
            },
            BusinessEvent::SurveyScored {
                score: 2,
                root_cause: ProblemKind::QualityDefect,
                department: Department::Quality,
            },
            BusinessEvent::SurveyUnanswered,
            BusinessEvent::LowScoreFollowUp {
                root_cause: ProblemKind::WrongItem,
            },
        ]
    }

    #[test]
    fn a_received_ticket_is_the_documented_example() {
        let event = &every_event()[0];
        let document = emf_document(&config(), at(), event);
        assert_eq!(
            document,
            json!({"_aws": {"Timestamp": 1_795_000_000_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "Aftersales",
                    "Dimensions": [["Stack"], ["Stack", "Channel"], ["Stack", "ProblemKind"]],
                    "Metrics": [{"Name": "TicketsReceived", "Unit": "Count"}]}]},
                   "Stack": "aftersales", "Channel": "web", "ProblemKind": "damaged_in_transit",
                   "TicketsReceived": 1})
        );
    }

    #[test]
    fn every_event_is_a_valid_emf_document_with_stack_first_in_every_set() {
        for event in every_event() {
            let document = emf_document(&config(), at(), &event);
            check_emf(&document).unwrap_or_else(|e| panic!("{event:?}: {e}"));
            for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                assert_eq!(directive["Namespace"], "Aftersales");
                for set in directive["Dimensions"].as_array().unwrap() {
                    assert_eq!(set[0], "Stack", "{event:?}");
                }
            }
        }
    }

    #[test]
    fn units_and_values_follow_the_table() {
        let units = |event: &BusinessEvent| -> Vec<(&'static str, &'static str, i64)> {
            event
                .metrics()
                .iter()
                .map(|m| (m.name, m.unit.as_str(), m.value))
                .collect()
        };
        let events = every_event();
        assert_eq!(
            units(&events[1]),
            vec![("TimeToFirstResponse", "Seconds", 90)]
        );
        assert_eq!(
            units(&events[2]),
            vec![
                ("TimeToResolution", "Seconds", 18_000),
                ("TicketsClosed", "Count", 1),
                ("TicketsResolved", "Count", 1)
            ]
        );
        assert_eq!(
            units(&events[4]),
            vec![
                ("RefundsIssued", "Count", 1),
                ("RefundedAmount", "None", 29900)
            ]
        );
        assert_eq!(units(&events[5]), vec![("SurveyScore", "None", 2)]);
    }

    #[test]
    fn a_refund_keeps_its_currency_as_a_dimension_of_the_amount_only() {
        let document = emf_document(&config(), at(), &every_event()[4]);
        let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["Stack"], ["Stack", "Step"]])
        );
        assert_eq!(directives[1]["Dimensions"], json!([["Stack", "Currency"]]));
        assert_eq!(document["Currency"], "CNY");
        assert_eq!(document["Step"], "return_refund");
    }

    #[test]
    fn a_negative_duration_counts_as_zero() {
        let event = BusinessEvent::FirstResponse {
            after: SignedDuration::from_secs(-5),
        };
        assert_eq!(event.metrics()[0].value, 0);
    }

    #[test]
    fn the_checker_rejects_what_cloudwatch_rejects() {
        let good = emf_document(&config(), at(), &every_event()[0]);
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut doc = good.clone();
            edit(&mut doc);
            check_emf(&doc).unwrap_err()
        };
        assert!(broken(&|d| d["_aws"]["Timestamp"] = json!("now")).contains("Timestamp"));
        assert!(
            broken(&|d| {
                d.as_object_mut().unwrap().remove("Channel");
            })
            .contains("Channel")
        );
        assert!(
            broken(&|d| {
                d.as_object_mut().unwrap().remove("TicketsReceived");
            })
            .contains("TicketsReceived")
        );
        assert!(
            broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Euros"))
                .contains("Unit")
        );
        assert!(
            broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!(""))
                .contains("Namespace")
        );
    }

    #[test]
    fn disabled_metrics_write_nothing_and_captured_ones_one_line_per_event() {
        let sink = CapturedMetrics::default();
        Metrics::disabled().emit(at(), &every_event()[0]);
        let metrics = Metrics::new(config(), Arc::new(sink.clone()));
        metrics.emit(at(), &every_event()[0]);
        metrics.emit(at(), &every_event()[6]);
        assert_eq!(sink.lines().len(), 2);
        assert!(sink.lines().iter().all(|l| !l.contains('\n')));
        assert_eq!(
            sink.metric_names(),
            vec!["TicketsReceived", "SurveysUnanswered"]
        );
    }

    #[tokio::test]
    async fn emit_goes_to_the_scoped_metrics() {
        let sink = CapturedMetrics::default();
        let metrics = Metrics::new(config(), Arc::new(sink.clone()));
        scoped(metrics, async {
            tokio::task::yield_now().await;
            emit(at(), &BusinessEvent::SurveyUnanswered);
        })
        .await;
        assert_eq!(sink.metric_names(), vec!["SurveysUnanswered"]);
    }
}

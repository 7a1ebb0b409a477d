//! Execution history, shaped like `GetExecutionHistory`.
//!
//! Every event has an `id` (1, 2, 3, ... in the order the engine records them), a
//! `previousEventId` (the event that led to it *in the same thread of control*: the previous
//! event of the same branch or Map iteration; `0` for `ExecutionStarted`), a `timestamp`, a
//! `type` (`ExecutionStarted`, `PassStateEntered`, `TaskScheduled`, `MapIterationStarted`, ...)
//! and, like the service, at most one `*EventDetails` object whose key depends on the type
//! (`stateEnteredEventDetails`, `taskSucceededEventDetails`, `mapIterationStartedEventDetails`,
//! ...). Inputs and outputs inside details are JSON *strings*, as in the service.
//!
//! [`HistoryEvent`] serialises (serde) to exactly that shape, with `timestamp` as an RFC 3339
//! string; [`HistoryEvent::to_aws_json`] gives the wire form with `timestamp` in epoch seconds.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub timestamp: Timestamp,
    #[serde(rename = "type")]
    pub event_type: String,
    pub id: u64,
    #[serde(rename = "previousEventId")]
    pub previous_event_id: u64,
    /// The `*EventDetails` member, if any (one key).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl HistoryEvent {
    /// The details object, whatever its key.
    pub fn detail(&self) -> Option<&Value> {
        self.details.values().next()
    }

    /// The state name for `*StateEntered`/`*StateExited`/`MapIteration*` events.
    pub fn state_name(&self) -> Option<&str> {
        self.detail()
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
    }

    /// The event as the service's JSON (`timestamp` in epoch seconds).
    pub fn to_aws_json(&self) -> Value {
        let mut m = Map::new();
        let secs = self.timestamp.as_millisecond() as f64 / 1000.0;
        m.insert("timestamp".into(), Value::from(secs));
        m.insert("type".into(), Value::from(self.event_type.clone()));
        m.insert("id".into(), Value::from(self.id));
        m.insert(
            "previousEventId".into(),
            Value::from(self.previous_event_id),
        );
        for (k, v) in &self.details {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// How much of the payloads the history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HistoryDetail {
    /// Inputs/outputs serialised into the events, as the service does.
    #[default]
    Full,
    /// Events and names only (no payload strings): faster for big payloads and big Maps.
    NoPayloads,
    /// No events at all (state-entered names and transition counts are still kept).
    Off,
}

/// The history of one execution plus the per-thread `previousEventId` bookkeeping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub(crate) events: Vec<HistoryEvent>,
    pub(crate) next_id: u64,
    pub(crate) detail: HistoryDetail,
}

impl History {
    pub(crate) fn new(detail: HistoryDetail) -> Self {
        History {
            events: Vec::new(),
            next_id: 1,
            detail,
        }
    }

    /// Records an event; returns its id. `prev` is the previous event of the calling thread.
    pub(crate) fn record(
        &mut self,
        now: Timestamp,
        event_type: &str,
        prev: u64,
        details: Option<(&str, Value)>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.detail != HistoryDetail::Off {
            let mut m = Map::new();
            if let Some((k, v)) = details {
                m.insert(k.to_string(), v);
            }
            self.events.push(HistoryEvent {
                timestamp: now,
                event_type: event_type.to_string(),
                id,
                previous_event_id: prev,
                details: m,
            });
        }
        id
    }

    /// Whether payload strings are wanted.
    pub(crate) fn payloads(&self) -> bool {
        self.detail == HistoryDetail::Full
    }
}

/// `{"name": .., "input": "<json>", "inputDetails": {"truncated": false}}` style helper.
pub(crate) fn payload_details(
    payloads: bool,
    fields: &[(&str, &str)],
    key: &str,
    value: Option<&Value>,
) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert((*k).to_string(), Value::from(*v));
    }
    if payloads && let Some(v) = value {
        m.insert(key.to_string(), Value::from(v.to_string()));
        m.insert(
            format!("{key}Details"),
            serde_json::json!({"truncated": false}),
        );
    }
    Value::Object(m)
}

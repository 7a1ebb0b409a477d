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
//!
//! Recording is cheap: the engine records an event with its payloads as the values it already
//! holds (shared, [`Shared`]), and the events are only rendered to that shape (payloads
//! serialised to JSON text) when the history is read or the execution is serialised.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::ops::Deref;
use std::sync::{Arc, LazyLock, OnceLock};

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

/// A JSON value shared between the engine and the history without copying it; serialises as
/// the value itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shared(Arc<Value>);

static NULL: LazyLock<Shared> = LazyLock::new(|| Shared(Arc::new(Value::Null)));

impl Shared {
    pub(crate) fn new(v: Value) -> Shared {
        Shared(Arc::new(v))
    }

    /// A shared `null` (no allocation).
    pub(crate) fn null() -> Shared {
        NULL.clone()
    }

    /// The value, copied only if the history (or anyone else) still shares it.
    pub(crate) fn into_value(self) -> Value {
        Arc::unwrap_or_clone(self.0)
    }

    /// Moves the value out of `slot` (leaving `null`), copying only if it is shared.
    pub(crate) fn take(slot: &mut Shared) -> Value {
        std::mem::take(slot).into_value()
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::null()
    }
}

impl Deref for Shared {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

impl From<Value> for Shared {
    fn from(v: Value) -> Self {
        Shared::new(v)
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Shared::new)
    }
}

/// A text member of an event's details.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Str(Arc<str>),
    Static(&'static str),
    Text(String),
}

impl Field {
    fn render(&self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.to_string()),
            Field::Static(s) => Value::String((*s).to_owned()),
            Field::Text(s) => Value::String(s.clone()),
        }
    }
}

/// The members of a details object as recorded (no allocation): up to three text members,
/// then a payload (rendered as its compact JSON text, optionally followed by
/// `<key>Details: {"truncated": false}`), then up to two numbers; rendered in that order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    head: [Option<(&'static str, Field)>; 3],
    payload: Option<(&'static str, Payload, bool)>,
    tail: [Option<(&'static str, u64)>; 2],
}

impl Fields {
    pub(crate) fn new() -> Fields {
        Fields::default()
    }

    /// Adds a text member (at most three).
    pub(crate) fn text(mut self, key: &'static str, value: Field) -> Fields {
        if let Some(slot) = self.head.iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, value));
        }
        self
    }

    /// Adds `key` (the payload's JSON text) and `<key>Details`, if payloads are kept.
    pub(crate) fn payload(mut self, payloads: bool, key: &'static str, value: &Shared) -> Fields {
        if payloads {
            self.payload = Some((key, Payload::Value(value.clone()), true));
        }
        self
    }

    /// Adds `key` (the payload's JSON text) without a `*Details` member.
    pub(crate) fn bare_payload(mut self, key: &'static str, value: &Shared) -> Fields {
        self.payload = Some((key, Payload::Value(value.clone()), false));
        self
    }

    /// Adds a `lambda:invoke` response given as `{"Payload": ..}` and its request id (see
    /// [`Payload::LambdaResponse`]), with `<key>Details`, if payloads are kept.
    pub(crate) fn lambda_response(
        mut self,
        payloads: bool,
        key: &'static str,
        value: &Shared,
        request_id: u128,
    ) -> Fields {
        if payloads {
            self.payload = Some((
                key,
                Payload::LambdaResponse(value.clone(), request_id),
                true,
            ));
        }
        self
    }

    /// Adds a number member (at most two).
    pub(crate) fn number(mut self, key: &'static str, value: u64) -> Fields {
        if let Some(slot) = self.tail.iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, value));
        }
        self
    }

    fn render(&self) -> Value {
        let mut m = Map::with_capacity(7);
        for (k, f) in self.head.iter().flatten() {
            m.insert((*k).to_owned(), f.render());
        }
        if let Some((k, v, with_details)) = &self.payload {
            m.insert((*k).to_owned(), Value::String(v.render()));
            if *with_details {
                let details_key = match *k {
                    "input" => "inputDetails",
                    "output" => "outputDetails",
                    _ => "parametersDetails",
                };
                let mut d = Map::new();
                d.insert("truncated".into(), Value::Bool(false));
                m.insert(details_key.to_owned(), Value::Object(d));
            }
        }
        for (k, n) in self.tail.iter().flatten() {
            m.insert((*k).to_owned(), Value::from(*n));
        }
        Value::Object(m)
    }
}

/// A payload of an event.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Value(Shared),
    /// The response of `arn:aws:states:::lambda:invoke` around `{"Payload": ..}`'s payload, with
    /// this request id (built only when rendered).
    LambdaResponse(Shared, u128),
}

impl Payload {
    /// Compact JSON text.
    fn render(&self) -> String {
        match self {
            Payload::Value(v) => serde_json::to_string(&**v).unwrap_or_default(),
            Payload::LambdaResponse(v, id) => {
                let payload = v.get("Payload").cloned().unwrap_or(Value::Null);
                let full = crate::resource::lambda_invoke_response(
                    payload,
                    &crate::resource::uuid_text(*id),
                );
                serde_json::to_string(&full).unwrap_or_default()
            }
        }
    }
}

/// The details of an event not rendered yet.
#[derive(Debug, Clone)]
pub(crate) enum Details {
    /// Built already (failures, Map and Parallel events).
    Value(Value),
    Fields(Fields),
}

/// An event as recorded, rendered on read.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    timestamp: Timestamp,
    event_type: &'static str,
    id: u64,
    previous_event_id: u64,
    details: Option<(&'static str, Details)>,
}

impl Recorded {
    fn render(&self) -> HistoryEvent {
        let mut details = Map::new();
        if let Some((key, d)) = &self.details {
            let v = match d {
                Details::Value(v) => v.clone(),
                Details::Fields(fields) => fields.render(),
            };
            details.insert((*key).to_owned(), v);
        }
        HistoryEvent {
            timestamp: self.timestamp,
            event_type: self.event_type.to_owned(),
            id: self.id,
            previous_event_id: self.previous_event_id,
            details,
        }
    }
}

/// The history of one execution plus the per-thread `previousEventId` bookkeeping.
///
/// Events read back from a snapshot stay rendered (`done`); events recorded since are kept as
/// recorded (`recorded`) and rendered when the history is read (cached until the next event)
/// or serialised. The serde form is the rendered list, as before.
#[derive(Debug, Clone, Default)]
pub struct History {
    done: Vec<HistoryEvent>,
    /// One small allocation per event rather than one big list (or chunks of events): freeing
    /// a block too big for glibc's per-thread cache (over 1 KiB) next to the top of the heap
    /// makes malloc consolidate its fast bins, on every execution.
    #[allow(clippy::vec_box)]
    recorded: Vec<Box<Recorded>>,
    rendered: OnceLock<Vec<HistoryEvent>>,
    pub(crate) next_id: u64,
    pub(crate) detail: HistoryDetail,
}

#[derive(Serialize)]
struct HistoryOut<'a> {
    events: Events<'a>,
    next_id: u64,
    detail: HistoryDetail,
}

struct Events<'a>(&'a History);

impl Serialize for Events<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let h = self.0;
        let mut seq = s.serialize_seq(Some(h.done.len() + h.recorded.len()))?;
        if let Some(all) = h.rendered.get() {
            for e in all {
                seq.serialize_element(e)?;
            }
        } else {
            for e in &h.done {
                seq.serialize_element(e)?;
            }
            for e in h.recorded.iter() {
                seq.serialize_element(&e.render())?;
            }
        }
        seq.end()
    }
}

#[derive(Deserialize)]
struct HistoryIn {
    events: Vec<HistoryEvent>,
    next_id: u64,
    detail: HistoryDetail,
}

impl Serialize for History {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HistoryOut {
            events: Events(self),
            next_id: self.next_id,
            detail: self.detail,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let h = HistoryIn::deserialize(d)?;
        Ok(History {
            done: h.events,
            recorded: Vec::new(),
            rendered: OnceLock::new(),
            next_id: h.next_id,
            detail: h.detail,
        })
    }
}

impl History {
    pub(crate) fn new(detail: HistoryDetail) -> Self {
        History {
            // room for a typical execution's events without regrowing
            recorded: Vec::with_capacity(if detail == HistoryDetail::Off { 0 } else { 64 }),
            next_id: 1,
            detail,
            ..History::default()
        }
    }

    /// The events in `GetExecutionHistory` shape.
    pub(crate) fn events(&self) -> &[HistoryEvent] {
        if self.recorded.is_empty() {
            return &self.done;
        }
        self.rendered.get_or_init(|| {
            let mut all = Vec::with_capacity(self.done.len() + self.recorded.len());
            all.extend(self.done.iter().cloned());
            all.extend(self.recorded.iter().map(|e| e.render()));
            all
        })
    }

    /// Records an event; returns its id. `prev` is the previous event of the calling thread.
    pub(crate) fn record(
        &mut self,
        now: Timestamp,
        event_type: &'static str,
        prev: u64,
        details: Option<(&'static str, Value)>,
    ) -> u64 {
        self.record_details(
            now,
            event_type,
            prev,
            details.map(|(k, v)| (k, Details::Value(v))),
        )
    }

    /// Records an event whose details are rendered on read.
    pub(crate) fn record_details(
        &mut self,
        now: Timestamp,
        event_type: &'static str,
        prev: u64,
        details: Option<(&'static str, Details)>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.detail != HistoryDetail::Off {
            if self.rendered.get().is_some() {
                self.rendered = OnceLock::new();
            }
            self.recorded.push(Box::new(Recorded {
                timestamp: now,
                event_type,
                id,
                previous_event_id: prev,
                details,
            }));
        }
        id
    }

    /// Whether payload strings are wanted.
    pub(crate) fn payloads(&self) -> bool {
        self.detail == HistoryDetail::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_in_order() {
        let mut h = History::new(HistoryDetail::Full);
        for i in 0..49 {
            let id = h.record(Timestamp::UNIX_EPOCH, "PassStateExited", i as u64, None);
            assert_eq!(id, i as u64 + 1);
        }
        let events = h.events();
        assert_eq!(events.len(), 49);
        assert!(
            events
                .iter()
                .enumerate()
                .all(|(i, e)| e.id == i as u64 + 1 && e.previous_event_id == i as u64)
        );
    }
}

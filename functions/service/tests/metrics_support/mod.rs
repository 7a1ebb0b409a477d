//! Captures the business metrics a handler emits (`docs/metrics.md`) and checks every line
//! against the EMF rules CloudWatch applies.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;

use aftersales_service::metrics::{self, CapturedMetrics, Metrics, MetricsConfig, check_emf};
use serde_json::Value;

pub const NAMESPACE: &str = "Aftersales";
pub const STACK: &str = "test-stack";

/// Runs `future` with metrics captured in memory.
pub async fn captured<F: Future>(future: F) -> (F::Output, Emitted) {
    let sink = CapturedMetrics::default();
    let config = MetricsConfig {
        namespace: NAMESPACE.into(),
        stack: STACK.into(),
    };
    let out = metrics::scoped(Metrics::new(config, Arc::new(sink.clone())), future).await;
    (out, Emitted(sink))
}

pub struct Emitted(CapturedMetrics);

impl Emitted {
    /// Every line as a JSON document, each checked as valid EMF in the stack's namespace with
    /// `Stack` first in every dimension set.
    pub fn documents(&self) -> Vec<Value> {
        let documents = self.0.documents();
        for document in &documents {
            check_emf(document).unwrap_or_else(|e| panic!("invalid EMF ({e}): {document}"));
            assert_eq!(document["Stack"], STACK, "{document}");
            for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                assert_eq!(directive["Namespace"], NAMESPACE);
                for set in directive["Dimensions"].as_array().unwrap() {
                    assert_eq!(set[0], "Stack", "{document}");
                }
            }
        }
        documents
    }

    /// The metric names, in the order they were emitted.
    pub fn names(&self) -> Vec<String> {
        self.documents();
        self.0.metric_names()
    }

    /// The one document that holds `metric` (panics unless exactly one does).
    pub fn document_of(&self, metric: &str) -> Value {
        let holding: Vec<Value> = self
            .documents()
            .into_iter()
            .filter(|d| d.get(metric).is_some())
            .collect();
        assert_eq!(holding.len(), 1, "{metric} in {holding:?}");
        holding.into_iter().next().unwrap()
    }

    /// The dimension sets `metric` is emitted with.
    pub fn dimension_sets(&self, metric: &str) -> Value {
        let document = self.document_of(metric);
        document["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["Metrics"][0]["Name"] == metric)
            .map(|d| d["Dimensions"].clone())
            .unwrap()
    }

    /// `metric`'s value and unit.
    pub fn value(&self, metric: &str) -> (Value, String) {
        let document = self.document_of(metric);
        let unit = document["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["Metrics"].as_array().unwrap().iter())
            .find(|m| m["Name"] == metric)
            .map(|m| m["Unit"].as_str().unwrap().to_owned())
            .unwrap();
        (document[metric].clone(), unit)
    }

    /// No line at all.
    pub fn is_empty(&self) -> bool {
        self.0.lines().is_empty()
    }
}

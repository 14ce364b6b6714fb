//! Metrics collected per invocation and flushed as CloudWatch EMF.

use crate::clock::{Clock, SystemClock};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const NAMESPACE: &str = "coursewire";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub unit: Unit,
    pub values: Vec<f64>,
}

/// Metrics that share one set of dimensions: one EMF line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    pub dimensions: Vec<(String, String)>,
    pub metrics: Vec<Metric>,
}

impl MetricSet {
    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sum of a metric's values, 0 when absent.
    pub fn sum(&self, name: &str) -> f64 {
        self.metrics
            .iter()
            .filter(|m| m.name == name)
            .flat_map(|m| m.values.iter())
            .sum()
    }
}

/// Where flushed metrics go: stdout EMF under Lambda, an in-memory collector under the local
/// runner (its summary is built from the very metrics the functions emit).
pub trait MetricsSink: Send + Sync {
    fn publish(&self, sets: Vec<MetricSet>);
}

/// Prints one EMF JSON line per metric set.
pub struct StdoutEmf;

impl MetricsSink for StdoutEmf {
    fn publish(&self, sets: Vec<MetricSet>) {
        let now = chrono::Utc::now().timestamp_millis();
        for set in sets {
            println!("{}", emf_line(&set, now));
        }
    }
}

/// Renders a metric set as an EMF document.
pub fn emf_line(set: &MetricSet, timestamp_millis: i64) -> Value {
    let dimension_names: Vec<&str> = set.dimensions.iter().map(|(k, _)| k.as_str()).collect();
    let definitions: Vec<Value> = set
        .metrics
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimension_names],
                "Metrics": definitions,
            }]
        }),
    );
    for (k, v) in &set.dimensions {
        doc.insert(k.clone(), Value::String(v.clone()));
    }
    for m in &set.metrics {
        let value = match m.values.as_slice() {
            [single] => json!(single),
            many => json!(many),
        };
        doc.insert(m.name.clone(), value);
    }
    Value::Object(doc)
}

type DimensionKey = Vec<(String, String)>;
/// Metric name → (unit, observations), per dimension set.
type Pending = BTreeMap<DimensionKey, BTreeMap<String, (Unit, Vec<f64>)>>;

/// An accumulator for one invocation: cheap to record into, flushed once at the end.
pub struct Metrics {
    base: Vec<(String, String)>,
    sink: Arc<dyn MetricsSink>,
    pending: Mutex<Pending>,
}

impl Metrics {
    /// `function` becomes the `Function` dimension of every metric.
    pub fn new(sink: Arc<dyn MetricsSink>, function: &str) -> Self {
        Self {
            base: vec![("Function".into(), function.into())],
            sink,
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn count(&self, name: &str, extra: &[(&str, &str)], n: u64) {
        if n > 0 {
            self.record(name, extra, Unit::Count, n as f64);
        }
    }

    pub fn record(&self, name: &str, extra: &[(&str, &str)], unit: Unit, value: f64) {
        let mut dims = self.base.clone();
        dims.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let mut pending = match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = pending
            .entry(dims)
            .or_default()
            .entry(name.to_string())
            .or_insert((unit, Vec::new()));
        // Counts add up; other units keep each observation (EMF takes arrays of values).
        match (unit, entry.1.first_mut()) {
            (Unit::Count, Some(total)) => *total += value,
            _ => entry.1.push(value),
        }
    }

    /// Publishes everything recorded so far and resets.
    pub fn flush(&self) {
        let drained = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if drained.is_empty() {
            return;
        }
        let sets = drained
            .into_iter()
            .map(|(dimensions, metrics)| MetricSet {
                dimensions,
                metrics: metrics
                    .into_iter()
                    .map(|(name, (unit, values))| Metric { name, unit, values })
                    .collect(),
            })
            .collect();
        self.sink.publish(sets);
    }
}

/// Keeps every published metric set in memory: the local runner's summary and the tests read
/// the same metrics the functions emit in production.
pub struct CollectingSink {
    /// Each set with when it was published (the local alarms read periods of them).
    sets: Mutex<Vec<(chrono::DateTime<chrono::Utc>, MetricSet)>>,
    /// Stamps each set as EMF's `Timestamp` would: the functions' clock.
    clock: Arc<dyn Clock>,
}

impl Default for CollectingSink {
    fn default() -> Self {
        Self::new()
    }
}

impl CollectingSink {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// Stamps sets with `clock`: on a simulated clock, "five minutes of metrics" can be made
    /// in seconds and the alarms read them as CloudWatch would.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            sets: Mutex::new(Vec::new()),
            clock,
        }
    }

    /// Sum of `name` over every set whose dimensions include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.with_sets(|sets| {
            sets.iter()
                .map(|(_, s)| s)
                .filter(|s| filter.iter().all(|(k, v)| s.dimension(k) == Some(*v)))
                .map(|s| s.sum(name))
                .sum()
        })
    }

    /// Sums of `name` grouped by the value of dimension `by` (e.g. rejects by `Reason`).
    pub fn sum_by(&self, name: &str, by: &str) -> BTreeMap<String, f64> {
        self.with_sets(|sets| {
            let mut out = BTreeMap::new();
            for (_, set) in sets {
                let total = set.sum(name);
                if let (Some(value), true) = (set.dimension(by), total > 0.0) {
                    *out.entry(value.to_string()).or_insert(0.0) += total;
                }
            }
            out
        })
    }

    /// Every observation of `name` (e.g. latencies), in publishing order.
    pub fn values(&self, name: &str) -> Vec<f64> {
        self.with_sets(|sets| {
            sets.iter()
                .flat_map(|(_, s)| {
                    s.metrics
                        .iter()
                        .filter(|m| m.name == name)
                        .flat_map(|m| m.values.iter().copied())
                })
                .collect()
        })
    }

    /// The values of `name` published in `(from, to]` by sets whose dimensions are exactly
    /// `dimensions` (CloudWatch names a metric by its full dimension set).
    pub fn values_between(
        &self,
        name: &str,
        dimensions: &[(String, String)],
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Vec<f64> {
        let same = |set: &MetricSet| {
            set.dimensions.len() == dimensions.len()
                && dimensions
                    .iter()
                    .all(|(k, v)| set.dimension(k) == Some(v.as_str()))
        };
        self.with_sets(|sets| {
            sets.iter()
                .filter(|(at, set)| *at > from && *at <= to && same(set))
                .flat_map(|(_, s)| {
                    s.metrics
                        .iter()
                        .filter(|m| m.name == name)
                        .flat_map(|m| m.values.iter().copied())
                })
                .collect()
        })
    }

    pub fn clear(&self) {
        self.with_sets_mut(Vec::clear);
    }

    fn with_sets<T>(
        &self,
        f: impl FnOnce(&Vec<(chrono::DateTime<chrono::Utc>, MetricSet)>) -> T,
    ) -> T {
        match self.sets.lock() {
            Ok(sets) => f(&sets),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn with_sets_mut(&self, f: impl FnOnce(&mut Vec<(chrono::DateTime<chrono::Utc>, MetricSet)>)) {
        match self.sets.lock() {
            Ok(mut sets) => f(&mut sets),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl MetricsSink for CollectingSink {
    fn publish(&self, sets: Vec<MetricSet>) {
        let now = self.clock.now();
        self.with_sets_mut(|all| all.extend(sets.into_iter().map(|set| (now, set))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Capture(Mutex<Vec<MetricSet>>);
    impl MetricsSink for Capture {
        fn publish(&self, sets: Vec<MetricSet>) {
            self.0.lock().unwrap().extend(sets);
        }
    }

    #[test]
    fn counts_add_up_and_dimensions_split_lines() {
        let sink = Arc::new(Capture(Mutex::new(vec![])));
        let m = Metrics::new(sink.clone(), "ingest-sqs");
        m.count("EventsAccepted", &[("Source", "sqs")], 2);
        m.count("EventsAccepted", &[("Source", "sqs")], 3);
        m.count(
            "EventsRejected",
            &[("Source", "sqs"), ("Reason", "invalid_json")],
            1,
        );
        m.record(
            "IngestLatency",
            &[("Source", "sqs")],
            Unit::Milliseconds,
            4.0,
        );
        m.record(
            "IngestLatency",
            &[("Source", "sqs")],
            Unit::Milliseconds,
            6.0,
        );
        m.flush();
        let sets = sink.0.lock().unwrap().clone();
        assert_eq!(sets.len(), 2);
        let plain = sets
            .iter()
            .find(|s| s.dimension("Reason").is_none())
            .unwrap();
        assert_eq!(plain.sum("EventsAccepted"), 5.0);
        assert_eq!(
            plain
                .metrics
                .iter()
                .find(|m| m.name == "IngestLatency")
                .unwrap()
                .values,
            vec![4.0, 6.0]
        );
        let line = emf_line(plain, 1);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Function", "Source"])
        );
        assert_eq!(line["EventsAccepted"], json!(5.0));
        assert_eq!(line["Function"], json!("ingest-sqs"));
        m.flush();
        assert_eq!(sink.0.lock().unwrap().len(), 2, "flush resets");
    }
}

//! CloudWatch Embedded Metric Format: the figures as JSON log lines that CloudWatch Logs turns
//! into metrics in the namespace [`NAMESPACE`] (on Lambda, where each instance's own counters
//! mean nothing to a scraper: `/metrics` is the local binary's, EMF replaces it on AWS).
//!
//! | document | dimension sets | metrics (unit) |
//! |---|---|---|
//! | one per HTTP request | `Function`; `Function, Route` | `Requests`, `Errors4xx`, `Errors5xx` (Count), `Latency` (Milliseconds) |
//! | | `Function` | `BytesIn`, `BytesOut` (Bytes) |
//! | sync runs per outcome | `Function`; `Function, Outcome` | `SyncRuns`, `SyncFailures` (Count), `SyncDuration` (Seconds, one value per run) |
//! | upstream requests per host and class | `Function, StatusClass`; `Function, UpstreamHost, StatusClass` | `UpstreamRequests` (Count) |
//! | content per type | `ContentType` | `ContentUnits` (Count), `ContentBytes` (Bytes) |
//!
//! A request's document also carries its `Method`, `Status` and `RequestId` as properties
//! (searchable in Logs Insights, no metrics).

use serde_json::{json, Map, Value};

use super::metrics::{Pending, RequestRecord, SyncOutcome};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Berth";

/// Most values one metric holds in one document (CloudWatch's limit).
const MAX_VALUES: usize = 100;

fn metrics(list: &[(&str, &str)]) -> Value {
    Value::Array(
        list.iter()
            .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
            .collect(),
    )
}

/// A document: `directives` (dimension sets, metrics) and the root members.
fn document(now_ms: i64, directives: Vec<(Value, Value)>, members: Map<String, Value>) -> String {
    let directives: Vec<Value> = directives
        .into_iter()
        .map(|(dims, metrics)| json!({"Namespace": NAMESPACE, "Dimensions": dims, "Metrics": metrics}))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({"Timestamp": now_ms, "CloudWatchMetrics": directives}),
    );
    root.extend(members);
    Value::Object(root).to_string()
}

fn members(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The `Function` dimension's value: the Lambda function's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    pub function: String,
}

impl Emf {
    pub fn new(function: impl Into<String>) -> Self {
        Emf {
            function: function.into(),
        }
    }

    /// The document of one HTTP request.
    pub fn request(&self, r: &RequestRecord<'_>, request_id: &str, now_ms: i64) -> String {
        let class = r.status / 100;
        document(
            now_ms,
            vec![
                (
                    json!([["Function"], ["Function", "Route"]]),
                    metrics(&[
                        ("Requests", "Count"),
                        ("Errors4xx", "Count"),
                        ("Errors5xx", "Count"),
                        ("Latency", "Milliseconds"),
                    ]),
                ),
                (
                    json!([["Function"]]),
                    metrics(&[("BytesIn", "Bytes"), ("BytesOut", "Bytes")]),
                ),
            ],
            members(json!({
                "Function": self.function,
                "Route": r.route,
                "Requests": 1,
                "Errors4xx": u8::from(class == 4),
                "Errors5xx": u8::from(class == 5),
                "Latency": (r.seconds * 1e6).round() / 1e3,
                "BytesIn": r.bytes_in,
                "BytesOut": r.bytes_out,
                "Method": r.method,
                "Status": r.status,
                "RequestId": request_id,
            })),
        )
    }

    /// The documents of what happened since the last flush: sync runs by outcome, upstream
    /// requests by host and class. None when nothing happened.
    pub fn pending(&self, p: &Pending, now_ms: i64) -> Vec<String> {
        let mut docs = Vec::new();
        let mut by_outcome: std::collections::BTreeMap<SyncOutcome, Vec<f64>> = Default::default();
        for (outcome, seconds) in &p.syncs {
            by_outcome.entry(*outcome).or_default().push(*seconds);
        }
        for (outcome, durations) in by_outcome {
            for chunk in durations.chunks(MAX_VALUES) {
                let failed = matches!(outcome, SyncOutcome::Failed | SyncOutcome::Retried);
                docs.push(document(
                    now_ms,
                    vec![(
                        json!([["Function"], ["Function", "Outcome"]]),
                        metrics(&[
                            ("SyncRuns", "Count"),
                            ("SyncFailures", "Count"),
                            ("SyncDuration", "Seconds"),
                        ]),
                    )],
                    members(json!({
                        "Function": self.function,
                        "Outcome": outcome.as_str(),
                        "SyncRuns": chunk.len(),
                        "SyncFailures": if failed { chunk.len() } else { 0 },
                        "SyncDuration": chunk,
                    })),
                ));
            }
        }
        for ((host, class), n) in &p.upstream {
            docs.push(document(
                now_ms,
                vec![(
                    json!([["Function", "StatusClass"], ["Function", "UpstreamHost", "StatusClass"]]),
                    metrics(&[("UpstreamRequests", "Count")]),
                )],
                members(json!({
                    "Function": self.function,
                    "UpstreamHost": host,
                    "StatusClass": class,
                    "UpstreamRequests": n,
                })),
            ));
        }
        docs
    }

    /// The documents of the content the registry holds: units and bytes per content type.
    pub fn content(totals: &[(&str, u64, Option<u64>)], now_ms: i64) -> Vec<String> {
        totals
            .iter()
            .map(|(ty, units, bytes)| {
                let mut list = vec![("ContentUnits", "Count")];
                let mut m = members(json!({"ContentType": ty, "ContentUnits": units}));
                if let Some(b) = bytes {
                    list.push(("ContentBytes", "Bytes"));
                    m.insert("ContentBytes".into(), json!(b));
                }
                document(now_ms, vec![(json!([["ContentType"]]), metrics(&list))], m)
            })
            .collect()
    }
}

/// Where EMF documents go: a line writer (standard output on Lambda) and the function they
/// are about.
#[derive(Clone)]
pub struct EmfSink {
    pub emf: Emf,
    writer: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
}

impl EmfSink {
    pub fn new(emf: Emf, writer: impl Fn(&str) + Send + Sync + 'static) -> Self {
        EmfSink {
            emf,
            writer: std::sync::Arc::new(writer),
        }
    }

    /// Writes one document (one line).
    pub fn write(&self, doc: &str) {
        (self.writer)(doc)
    }
}

impl std::fmt::Debug for EmfSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfSink")
            .field("emf", &self.emf)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Metrics;

    /// Checks a document against the format's rules: `_aws` with a timestamp and directives,
    /// every dimension and metric a root member, metric values numbers or arrays of at most
    /// 100 numbers.
    fn check(doc: &str) -> Value {
        let v: Value = serde_json::from_str(doc).unwrap();
        assert!(!doc.contains('\n'), "one line");
        let aws = &v["_aws"];
        assert!(aws["Timestamp"].as_i64().unwrap() > 0);
        for d in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(d["Namespace"], NAMESPACE);
            for set in d["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    assert!(v[dim.as_str().unwrap()].is_string(), "{dim} in {doc}");
                }
            }
            for m in d["Metrics"].as_array().unwrap() {
                let value = &v[m["Name"].as_str().unwrap()];
                match value {
                    Value::Number(_) => {}
                    Value::Array(a) => assert!(a.len() <= 100 && a.iter().all(Value::is_number)),
                    _ => panic!("metric {m} is no number in {doc}"),
                }
                assert!(m["Unit"].is_string());
            }
        }
        v
    }

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let emf = Emf::new("berth-registry");
        let r = RequestRecord {
            route: "/v2/{name}/blobs/{digest}",
            method: "GET",
            status: 503,
            seconds: 0.012_345_6,
            bytes_in: 0,
            bytes_out: 42,
        };
        let v = check(&emf.request(&r, "rid-1", 1_700_000_000_000));
        assert_eq!(
            (v["Requests"].as_u64(), v["Errors5xx"].as_u64(), v["Errors4xx"].as_u64()),
            (Some(1), Some(1), Some(0))
        );
        assert_eq!(v["Latency"], 12.346);
        assert_eq!(
            (v["RequestId"].as_str(), v["Status"].as_u64()),
            (Some("rid-1"), Some(503))
        );

        let m = Metrics::for_emf();
        for i in 0..150 {
            m.record_sync(SyncOutcome::Completed, f64::from(i));
        }
        m.record_sync(SyncOutcome::Failed, 2.0);
        m.record_upstream("registry-1.docker.io:443", Some(200));
        m.record_upstream("registry-1.docker.io:443", Some(200));
        let docs = emf.pending(&m.take_pending(), 1);
        assert_eq!(
            docs.len(),
            4,
            "two chunks of completed runs, one of failed, one upstream"
        );
        let docs: Vec<Value> = docs.iter().map(|d| check(d)).collect();
        assert_eq!(docs[0]["SyncRuns"], 100);
        assert_eq!(docs[1]["SyncRuns"], 50);
        assert_eq!(
            (docs[2]["Outcome"].as_str(), docs[2]["SyncFailures"].as_u64()),
            (Some("failed"), Some(1))
        );
        assert_eq!(docs[3]["UpstreamRequests"], 2);
        assert!(emf.pending(&m.take_pending(), 1).is_empty());

        let docs = Emf::content(&[("blob", 3, Some(1024)), ("tag", 2, None)], 1);
        let v: Vec<Value> = docs.iter().map(|d| check(d)).collect();
        assert_eq!(
            (v[0]["ContentUnits"].as_u64(), v[0]["ContentBytes"].as_u64()),
            (Some(3), Some(1024))
        );
        assert!(v[1].get("ContentBytes").is_none());
    }
}

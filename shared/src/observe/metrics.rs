//! The metrics registry: the counters and histograms Berth records as it works, one registry
//! per instance ([`crate::app::App::metrics`]), so that two instances in one process (tests)
//! count apart.
//!
//! Recording costs a read lock, a map lookup and an atomic add; a label set seen for the first
//! time takes the write lock once. Label values are bounded by construction (route templates,
//! methods, statuses, outcomes, upstream hosts); a family keeps at most [`MAX_SERIES`] label
//! sets, and counts further ones under the value [`OVERFLOW`] so that memory stays bounded
//! whatever clients send.
//!
//! Gauges are not kept here: what the store holds and the queue's depth are read when they are
//! asked for (see `services::observed`), the process's own figures from `/proc` (see
//! [`super::process`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// Most label sets one family keeps.
pub const MAX_SERIES: usize = 1000;
/// The label value of every label set beyond [`MAX_SERIES`].
pub const OVERFLOW: &str = "other";

/// Bounds (seconds) of the HTTP latency histogram's buckets.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Bounds (seconds) of the sync duration histogram's buckets.
pub const SYNC_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// Most sync runs kept for the next EMF flush (a sync worker invocation runs a few).
const MAX_PENDING_SYNCS: usize = 1000;

/// The joined key of a label set (values never hold the separator: it is a control
/// character, replaced when a value holds it).
fn key_of(values: &[&str]) -> String {
    let mut k = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            k.push('\u{1f}');
        }
        k.extend(v.chars().map(|c| if c == '\u{1f}' { '?' } else { c }));
    }
    k
}

/// One label set's values and its cell.
type Cell<T> = (Vec<String>, Arc<T>);

/// A family of series keyed by label values.
struct Series<T> {
    map: RwLock<HashMap<String, Cell<T>>>,
}

impl<T> Series<T> {
    fn new() -> Self {
        Series {
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The cell of `values`, made by `make` when new (under [`OVERFLOW`] once the family is
    /// full).
    fn cell(&self, values: &[&str], make: impl FnOnce() -> T) -> Arc<T> {
        let key = key_of(values);
        if let Some((_, c)) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return c.clone();
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let full = map.len() >= MAX_SERIES && !map.contains_key(&key);
        let (key, values): (String, Vec<String>) = if full {
            let other = vec![OVERFLOW; values.len()];
            (key_of(&other), other.iter().map(|s| (*s).to_owned()).collect())
        } else {
            (key, values.iter().map(|s| (*s).to_owned()).collect())
        };
        map.entry(key).or_insert_with(|| (values, Arc::new(make()))).1.clone()
    }

    fn get(&self, values: &[&str]) -> Option<Arc<T>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&key_of(values)).map(|(_, c)| c.clone())
    }

    /// Every series, by label values.
    fn all(&self) -> Vec<Cell<T>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// A counter per label set.
pub struct CounterVec {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    series: Series<AtomicU64>,
}

impl CounterVec {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        CounterVec {
            name,
            help,
            labels,
            series: Series::new(),
        }
    }

    pub fn add(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        self.series
            .cell(values, AtomicU64::default)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The count of `values` (0 when never counted).
    pub fn get(&self, values: &[&str]) -> u64 {
        self.series.get(values).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The sum over every label set whose values pass `pick`.
    pub fn sum(&self, pick: impl Fn(&[String]) -> bool) -> u64 {
        self.series
            .all()
            .iter()
            .filter(|(v, _)| pick(v))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    fn family(&self) -> Family {
        Family {
            name: self.name,
            help: self.help,
            kind: Kind::Counter,
            series: self
                .series
                .all()
                .into_iter()
                .map(|(values, c)| Sample {
                    labels: self.labels.iter().copied().zip(values).collect(),
                    value: Value::Number(c.load(Ordering::Relaxed) as f64),
                })
                .collect(),
        }
    }
}

/// One histogram: a count per bucket, the sum and the count of what it observed.
pub struct Histogram {
    /// Per bound of the family, then the `+Inf` bucket (not cumulative).
    buckets: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram {
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, bounds: &[f64], v: f64) {
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
            Some((f64::from_bits(s) + v).to_bits())
        });
    }

    fn value(&self, bounds: &'static [f64]) -> Value {
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut total = 0;
        for b in self.buckets.iter() {
            total += b.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        // the count is the `+Inf` bucket's, so the two always agree
        Value::Histogram {
            bounds,
            count: total,
            cumulative,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram per label set.
pub struct HistogramVec {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub bounds: &'static [f64],
    series: Series<Histogram>,
}

impl HistogramVec {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        HistogramVec {
            name,
            help,
            labels,
            bounds,
            series: Series::new(),
        }
    }

    pub fn observe(&self, values: &[&str], v: f64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let bounds = self.bounds;
        self.series.cell(values, || Histogram::new(bounds)).observe(bounds, v);
    }

    /// How many values `values` observed (0 when none).
    pub fn count(&self, values: &[&str]) -> u64 {
        self.series
            .get(values)
            .map_or(0, |h| h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum())
    }

    fn family(&self) -> Family {
        Family {
            name: self.name,
            help: self.help,
            kind: Kind::Histogram,
            series: self
                .series
                .all()
                .into_iter()
                .map(|(values, h)| Sample {
                    labels: self.labels.iter().copied().zip(values).collect(),
                    value: h.value(self.bounds),
                })
                .collect(),
        }
    }
}

/// What kind of figure a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A figure of one label set.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Histogram {
        bounds: &'static [f64],
        /// Per bound, then `+Inf`: how many observed values were at most it.
        cumulative: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// One label set of a family and its figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A metric family as it is exposed: name, help, kind and every label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Vec<Sample>,
}

impl Family {
    /// A gauge family.
    pub fn gauge(name: &'static str, help: &'static str, series: Vec<Sample>) -> Self {
        Family {
            name,
            help,
            kind: Kind::Gauge,
            series,
        }
    }
}

impl Sample {
    pub fn new(labels: Vec<(&'static str, String)>, value: f64) -> Self {
        Sample {
            labels,
            value: Value::Number(value),
        }
    }
}

/// How a sync run ended, as its job's result says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncOutcome {
    /// Finished: completed (a new version or none), canceled, or found done already.
    Completed,
    /// Failed for good; its task says why.
    Failed,
    /// Failed in a way that is tried again (a store or upstream outage).
    Retried,
    /// Reached its run's deadline and continues in a follow-up run.
    Continued,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Completed => "completed",
            SyncOutcome::Failed => "failed",
            SyncOutcome::Retried => "retried",
            SyncOutcome::Continued => "continued",
        }
    }
}

/// One HTTP request as the access log saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// The route template (`/v2/{name}/blobs/{digest}`), never the raw path.
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub seconds: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// What happened since the last EMF flush that the flush reports (kept only when the
/// registry was made [`Metrics::for_emf`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pending {
    /// Each sync run's outcome and duration (seconds).
    pub syncs: Vec<(SyncOutcome, f64)>,
    /// Upstream requests by host and status class.
    pub upstream: BTreeMap<(String, String), u64>,
}

/// Every counter and histogram of one instance.
pub struct Metrics {
    pub http_requests: CounterVec,
    pub http_duration: HistogramVec,
    pub http_request_bytes: CounterVec,
    pub http_response_bytes: CounterVec,
    pub sync_runs: CounterVec,
    pub sync_duration: HistogramVec,
    pub upstream_requests: CounterVec,
    started: SystemTime,
    pending: Option<Mutex<Pending>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

const ROUTE: &[&str] = &["route", "method"];

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            http_requests: CounterVec::new(
                "berth_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: HistogramVec::new(
                "berth_http_request_duration_seconds",
                "Time from a request's arrival to the last byte of its answer, by route template and method.",
                ROUTE,
                HTTP_BUCKETS,
            ),
            http_request_bytes: CounterVec::new(
                "berth_http_request_bytes_total",
                "Request body bytes received (as read by Berth), by route template and method.",
                ROUTE,
            ),
            http_response_bytes: CounterVec::new(
                "berth_http_response_bytes_total",
                "Response body bytes sent, by route template and method.",
                ROUTE,
            ),
            sync_runs: CounterVec::new(
                "berth_sync_runs_total",
                "Sync runs, by outcome (completed, failed, retried, continued).",
                &["outcome"],
            ),
            sync_duration: HistogramVec::new(
                "berth_sync_duration_seconds",
                "Duration of sync runs, by outcome.",
                &["outcome"],
                SYNC_BUCKETS,
            ),
            upstream_requests: CounterVec::new(
                "berth_upstream_requests_total",
                "Requests to upstream registries (each attempt, token realms and redirect targets included), by \
                 host and status class (2xx … 5xx, or error when no answer came).",
                &["host", "class"],
            ),
            started: SystemTime::now(),
            pending: None,
        }
    }

    /// A registry that also keeps what happened since its last EMF flush ([`Metrics::take_pending`]).
    pub fn for_emf() -> Self {
        Metrics {
            pending: Some(Mutex::new(Pending::default())),
            ..Self::new()
        }
    }

    /// The registry an instance with `settings` keeps: one that keeps what to flush when it
    /// writes EMF documents.
    pub fn for_settings(settings: &crate::app::Settings) -> Self {
        if settings.emf.is_some() {
            Self::for_emf()
        } else {
            Self::new()
        }
    }

    /// When this registry was made (the instance's start).
    pub fn started(&self) -> SystemTime {
        self.started
    }

    pub fn record_request(&self, r: &RequestRecord<'_>) {
        let status = r.status.to_string();
        self.http_requests.add(&[r.route, r.method, &status], 1);
        self.http_duration.observe(&[r.route, r.method], r.seconds);
        if r.bytes_in > 0 {
            self.http_request_bytes.add(&[r.route, r.method], r.bytes_in);
        }
        if r.bytes_out > 0 {
            self.http_response_bytes.add(&[r.route, r.method], r.bytes_out);
        }
    }

    pub fn record_sync(&self, outcome: SyncOutcome, seconds: f64) {
        self.sync_runs.add(&[outcome.as_str()], 1);
        self.sync_duration.observe(&[outcome.as_str()], seconds);
        self.with_pending(|p| {
            if p.syncs.len() < MAX_PENDING_SYNCS {
                p.syncs.push((outcome, seconds));
            }
        });
    }

    /// One request to an upstream `host` (`host:port`), answered with `status` (`None`: no
    /// answer came: a transport error or a refusal).
    pub fn record_upstream(&self, host: &str, status: Option<u16>) {
        let class = status_class(status);
        self.upstream_requests.add(&[host, class], 1);
        self.with_pending(|p| {
            let key = (host.to_owned(), class.to_owned());
            if p.upstream.len() < MAX_SERIES || p.upstream.contains_key(&key) {
                *p.upstream.entry(key).or_default() += 1;
            }
        });
    }

    fn with_pending(&self, f: impl FnOnce(&mut Pending)) {
        if let Some(p) = &self.pending {
            f(&mut p.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// What happened since the last call (nothing unless made [`Metrics::for_emf`]).
    pub fn take_pending(&self) -> Pending {
        match &self.pending {
            Some(p) => std::mem::take(&mut *p.lock().unwrap_or_else(|e| e.into_inner())),
            None => Pending::default(),
        }
    }

    /// Every family this registry keeps, in a stable order.
    pub fn families(&self) -> Vec<Family> {
        vec![
            self.http_requests.family(),
            self.http_duration.family(),
            self.http_request_bytes.family(),
            self.http_response_bytes.family(),
            self.sync_runs.family(),
            self.sync_duration.family(),
            self.upstream_requests.family(),
        ]
    }
}

/// `2xx` … `5xx` for a status, `error` for none.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status.map(|s| s / 100) {
        Some(1) => "1xx",
        Some(2) => "2xx",
        Some(3) => "3xx",
        Some(4) => "4xx",
        Some(5) => "5xx",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_count_per_label_set() {
        let m = Metrics::new();
        let r = |status, seconds, out| RequestRecord {
            route: "/v2/{name}/blobs/{digest}",
            method: "GET",
            status,
            seconds,
            bytes_in: 0,
            bytes_out: out,
        };
        m.record_request(&r(200, 0.003, 10));
        m.record_request(&r(200, 2.0, 5));
        m.record_request(&r(404, 0.0001, 0));
        assert_eq!(m.http_requests.get(&["/v2/{name}/blobs/{digest}", "GET", "200"]), 2);
        assert_eq!(m.http_requests.get(&["/v2/{name}/blobs/{digest}", "GET", "404"]), 1);
        assert_eq!(m.http_response_bytes.get(&["/v2/{name}/blobs/{digest}", "GET"]), 15);
        let fam = m.http_duration.family();
        let Value::Histogram {
            cumulative, sum, count, ..
        } = &fam.series[0].value
        else {
            panic!("a histogram")
        };
        assert_eq!(*count, 3);
        assert!((sum - 2.0031).abs() < 1e-9);
        // 0.0001 and 0.003 at most 0.005; all three at most 2.5; +Inf holds every one
        assert_eq!(cumulative[2], 2);
        assert_eq!(cumulative[10], 3);
        assert_eq!(*cumulative.last().unwrap(), 3);
        assert!(cumulative.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_full_family_counts_new_label_sets_as_other() {
        let c = CounterVec::new("c", "c", &["host"]);
        for i in 0..MAX_SERIES + 5 {
            c.add(&[&format!("h{i}")], 1);
        }
        assert_eq!(c.family().series.len(), MAX_SERIES + 1);
        assert_eq!(c.get(&[OVERFLOW]), 5);
        // a label set kept before is still its own
        c.add(&["h0"], 1);
        assert_eq!(c.get(&["h0"]), 2);
    }

    #[test]
    fn only_an_emf_registry_keeps_what_to_flush() {
        let plain = Metrics::new();
        plain.record_upstream("a:1", Some(200));
        assert_eq!(plain.take_pending(), Pending::default());
        let emf = Metrics::for_emf();
        emf.record_upstream("a:1", Some(200));
        emf.record_upstream("a:1", Some(201));
        emf.record_upstream("a:1", None);
        emf.record_sync(SyncOutcome::Failed, 1.5);
        let p = emf.take_pending();
        assert_eq!(p.upstream[&("a:1".to_owned(), "2xx".to_owned())], 2);
        assert_eq!(p.upstream[&("a:1".to_owned(), "error".to_owned())], 1);
        assert_eq!(p.syncs, vec![(SyncOutcome::Failed, 1.5)]);
        assert_eq!(emf.take_pending(), Pending::default(), "taken once");
        assert_eq!(emf.upstream_requests.get(&["a:1", "2xx"]), 2, "the totals stay");
    }
}

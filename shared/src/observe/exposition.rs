//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` per family,
//! then one `name{label="value",…} number` line per sample; histograms as cumulative
//! `_bucket` lines with `le`, then `_sum` and `_count`.

use std::fmt::Write as _;

use super::metrics::{Family, Kind, Value};

/// The media type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A number as the format writes it: whole numbers without a fraction.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, String)], extra: Option<(&str, &str)>) -> String {
    let mut all: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        all.push(format!("{k}=\"{}\"", escape_label(v)));
    }
    if all.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", all.join(","))
    }
}

/// The families in the text format.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for s in &f.series {
            match &s.value {
                Value::Number(v) => {
                    let _ = writeln!(out, "{}{} {}", f.name, labels(&s.labels, None), number(*v));
                }
                Value::Histogram {
                    bounds,
                    cumulative,
                    sum,
                    count,
                } => {
                    let les = bounds.iter().map(|b| number(*b)).chain(["+Inf".to_owned()]);
                    for (le, n) in les.zip(cumulative) {
                        let _ = writeln!(out, "{}_bucket{} {n}", f.name, labels(&s.labels, Some(("le", &le))));
                    }
                    let l = labels(&s.labels, None);
                    let _ = writeln!(out, "{}_sum{l} {}", f.name, number(*sum));
                    let _ = writeln!(out, "{}_count{l} {count}", f.name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::metrics::{Metrics, RequestRecord, Sample};
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        let m = Metrics::new();
        m.record_request(&RequestRecord {
            route: "/v2/{name}/manifests/{reference}",
            method: "GET",
            status: 200,
            seconds: 0.02,
            bytes_in: 0,
            bytes_out: 512,
        });
        let mut families = m.families();
        families.push(Family::gauge(
            "berth_test",
            "A \"quoted\" help\nwith a line break.",
            vec![Sample::new(vec![("type", "a\"b\\c".into())], 1.5)],
        ));
        let text = render(&families);
        assert!(text.contains(
            "berth_http_requests_total{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\",status=\"200\"} 1\n"
        ));
        assert!(text.contains(
            "berth_http_request_duration_seconds_bucket{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\",le=\"0.025\"} 1\n"
        ));
        assert!(text.contains(
            "berth_http_request_duration_seconds_bucket{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\",le=\"0.01\"} 0\n"
        ));
        assert!(text.contains(
            "berth_http_request_duration_seconds_count{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\"} 1\n"
        ));
        assert!(text.contains("# HELP berth_test A \"quoted\" help\\nwith a line break.\n"));
        assert!(text.contains("berth_test{type=\"a\\\"b\\\\c\"} 1.5\n"));
        assert!(text.contains("# TYPE berth_sync_runs_total counter\n"));
        // every line a comment or a sample
        for line in text.lines() {
            assert!(line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("berth_"));
        }
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}

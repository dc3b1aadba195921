//! The process's own figures: its version, start time, resident memory, open files and CPU
//! time. Memory, open files and CPU come from `/proc/self` (Linux); elsewhere they are left
//! out.

use std::time::SystemTime;

use super::metrics::{Family, Kind, Sample};

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

/// User plus system CPU seconds, from `/proc/self/stat` (fields 14 and 15, after the command
/// name in parentheses, which may hold spaces).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

fn one(name: &'static str, help: &'static str, kind: Kind, value: Option<f64>) -> Option<Family> {
    Some(Family {
        name,
        help,
        kind,
        series: vec![Sample::new(vec![], value?)],
    })
}

/// The process's families; `started` is when the instance started.
pub fn families(started: SystemTime) -> Vec<Family> {
    let start = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .ok();
    [
        Some(Family::gauge(
            "berth_build_info",
            "Always 1; the version label is Berth's version.",
            vec![Sample::new(vec![("version", env!("CARGO_PKG_VERSION").into())], 1.0)],
        )),
        one(
            "berth_process_start_time_seconds",
            "When the instance started, in seconds since the Unix epoch.",
            Kind::Gauge,
            start,
        ),
        one(
            "berth_process_resident_memory_bytes",
            "Resident memory of the process, in bytes.",
            Kind::Gauge,
            resident_bytes(),
        ),
        one(
            "berth_process_open_fds",
            "Open file descriptors of the process (connections, files, the database).",
            Kind::Gauge,
            open_fds(),
        ),
        one(
            "berth_process_cpu_seconds_total",
            "User and system CPU time the process used, in seconds.",
            Kind::Counter,
            cpu_seconds(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_figures_are_read_on_linux() {
        let f = families(SystemTime::now());
        let names: Vec<_> = f.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "berth_build_info",
                "berth_process_start_time_seconds",
                "berth_process_resident_memory_bytes",
                "berth_process_open_fds",
                "berth_process_cpu_seconds_total"
            ]
        );
        let value = |name: &str| match f.iter().find(|f| f.name == name).unwrap().series[0].value {
            super::super::metrics::Value::Number(v) => v,
            _ => panic!("a number"),
        };
        assert!(value("berth_process_resident_memory_bytes") > 1e6);
        assert!(value("berth_process_open_fds") >= 3.0);
    }
}

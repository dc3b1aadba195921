//! When a schedule fires: a fixed interval ([`Cadence::Every`]) or a cron expression
//! ([`Cadence::Cron`], the five fields of crontab(5) in UTC), and the spellings clients use for
//! an interval (Django's duration string as pulpcore renders `dispatch_interval`, ISO 8601, or
//! seconds).
//!
//! A schedule that was not fired for a while (the server was down) fires once and then at its
//! next slot after now: [`Cadence::next_after`] skips every slot already past.

use chrono::{DateTime, Datelike, Duration, NaiveDate, SubsecRound, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// The shortest interval a schedule may have.
pub const MIN_INTERVAL_SECS: u64 = 1;
/// The longest (about 100 years; chrono's arithmetic stays far from its limits).
pub const MAX_INTERVAL_SECS: u64 = 100 * 366 * 86_400;

/// How often a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cadence {
    /// Every `secs` seconds, in phase with the first slot.
    Every { secs: u64 },
    /// At the minutes a cron expression names (UTC).
    Cron { expr: String },
}

impl Cadence {
    /// A cron cadence, when the expression parses.
    pub fn cron(expr: &str) -> Result<Cadence, String> {
        Cron::parse(expr)?;
        Ok(Cadence::Cron {
            expr: expr.trim().to_owned(),
        })
    }

    /// An interval cadence within [`MIN_INTERVAL_SECS`]..=[`MAX_INTERVAL_SECS`].
    pub fn every(secs: u64) -> Result<Cadence, String> {
        if secs < MIN_INTERVAL_SECS {
            return Err(format!("Ensure this value is at least {MIN_INTERVAL_SECS} second."));
        }
        if secs > MAX_INTERVAL_SECS {
            return Err("Ensure this value is at most 100 years.".into());
        }
        Ok(Cadence::Every { secs })
    }

    /// The first slot after creation at `now` (in whole seconds).
    pub fn first_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Every { secs } => now.trunc_subsecs(0) + secs_duration(*secs),
            Cadence::Cron { .. } => self.next_after(now, now),
        }
    }

    /// The first slot strictly after `now`, given the slot `due` that was just fired (or
    /// found past): an interval keeps its phase (`due + k·interval`), a cron expression takes
    /// its next matching minute. Slots missed while nothing fired are skipped, not caught up.
    pub fn next_after(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Every { secs } => {
                let step = secs_duration(*secs);
                if due > now {
                    return due;
                }
                let behind = (now - due).num_seconds().max(0) as u64;
                let k = behind / secs + 1;
                due + step * i32::try_from(k.min(i32::MAX as u64)).unwrap_or(i32::MAX)
            }
            Cadence::Cron { expr } => match Cron::parse(expr) {
                Ok(c) => c.next_after(now).unwrap_or(now + Duration::days(366 * 30)),
                // stored expressions were checked when they were stored
                Err(_) => now + Duration::days(366 * 30),
            },
        }
    }

    /// The interval, for intervals.
    pub fn interval_secs(&self) -> Option<u64> {
        match self {
            Cadence::Every { secs } => Some(*secs),
            Cadence::Cron { .. } => None,
        }
    }

    pub fn cron_expr(&self) -> Option<&str> {
        match self {
            Cadence::Cron { expr } => Some(expr),
            Cadence::Every { .. } => None,
        }
    }
}

fn secs_duration(secs: u64) -> Duration {
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// Parses an interval as clients send one: Django's duration string (`[D ]HH:MM:SS[.ffffff]`,
/// `MM:SS`, `SS`, as DRF's `DurationField` reads it), ISO 8601 (`P1DT2H`, `PT30S`; weeks and
/// days, no years or months), or a number of seconds. Fractions of a second are dropped.
pub fn parse_interval(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || "Duration has wrong format. Use one of these formats instead: [DD] [HH:[MM:]]ss[.uuuuuu].".to_owned();
    if s.is_empty() {
        return Err(bad());
    }
    if let Some(rest) = s.strip_prefix('P').or_else(|| s.strip_prefix("-P")) {
        if s.starts_with('-') {
            return Err(bad());
        }
        return parse_iso(rest).ok_or_else(bad);
    }
    let (days, clock) = match s.split_once(' ') {
        Some((d, c)) => (d.trim().parse::<u64>().map_err(|_| bad())?, c.trim()),
        None => (0, s),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (secs_part, rest) = parts.split_last().ok_or_else(bad)?;
    let whole = secs_part.split('.').next().unwrap_or_default();
    if !secs_part
        .split('.')
        .enumerate()
        .all(|(i, x)| i < 2 && !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let mut total: u64 = whole.parse().map_err(|_| bad())?;
    let mut unit = 60u64;
    for p in rest.iter().rev() {
        let v: u64 = p.parse().map_err(|_| bad())?;
        total = total
            .checked_add(v.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        unit *= 60;
    }
    days.checked_mul(86_400)
        .and_then(|d| d.checked_add(total))
        .ok_or_else(bad)
}

fn parse_iso(rest: &str) -> Option<u64> {
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0u64;
    let mut any = false;
    let mut take = |s: &str, units: &[(char, u64)]| -> Option<()> {
        let mut num = String::new();
        let mut allowed = units.iter();
        for c in s.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let (_, mult) = allowed.find(|(u, _)| *u == c)?;
            let whole: u64 = num.split('.').next()?.parse().ok()?;
            total = total.checked_add(whole.checked_mul(*mult)?)?;
            num.clear();
            any = true;
        }
        num.is_empty().then_some(())
    };
    take(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(total)
}

/// An interval as pulpcore renders `dispatch_interval` (Django's `duration_string`):
/// `HH:MM:SS`, with `D ` before it from one day on.
pub fn format_interval(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let clock = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if days > 0 {
        format!("{days} {clock}")
    } else {
        clock
    }
}

/// A parsed cron expression: minute, hour, day of month, month, day of week (0 and 7 are
/// Sunday), each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n` or `a/n`, or a list of
/// those; month and weekday names (`jan`, `mon`) and the `@hourly`, `@daily`, `@weekly`,
/// `@monthly` and `@yearly` shorthands. When both day fields are restricted, a day matching
/// either fires (as cron does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expr = expr.trim();
        let expanded = match expr {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            e => e,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "\"{expr}\" is not a cron expression: it needs five fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let minutes = field(fields[0], 0, 59, &[], "minute")?;
        let hours = field(fields[1], 0, 23, &[], "hour")?;
        let days = field(fields[2], 1, 31, &[], "day of month")?;
        let months = field(fields[3], 1, 12, &MONTHS, "month")?;
        let mut weekdays = field(fields[4], 0, 7, &WEEKDAYS, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            days_any: fields[2].starts_with('*'),
            weekdays_any: fields[4].starts_with('*'),
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first matching minute strictly after `t`; `None` when none comes within 30 years
    /// (e.g. 30 February).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = t.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut day = start.date_naive();
        let last = day + Duration::days(366 * 30);
        let mut first_day = true;
        while day <= last {
            if self.day_matches(day) {
                let (h0, m0) = if first_day {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                for h in h0..24 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    let from = if h == h0 { m0 } else { 0 };
                    if let Some(m) = (from..60).find(|m| self.minutes & (1 << m) != 0) {
                        return Some(Utc.from_utc_datetime(&day.and_hms_opt(h, m, 0)?));
                    }
                }
            }
            day = day.succ_opt()?;
            first_day = false;
        }
        None
    }
}

/// One field as a bit set of the values it names.
fn field(s: &str, lo: u32, hi: u32, names: &[&str], what: &str) -> Result<u64, String> {
    let bad = |why: String| format!("invalid {what} field \"{s}\": {why}");
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            // months are 1-based, weekdays 0-based
            return Ok(i as u32 + lo);
        }
        let n: u32 = v.parse().map_err(|_| bad(format!("\"{v}\" is not a number")))?;
        if n < lo || n > hi {
            return Err(bad(format!("{n} is outside {lo}-{hi}")));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st: u32 = st.parse().map_err(|_| bad(format!("\"{st}\" is not a step")))?;
                if st == 0 {
                    return Err(bad("a step of 0".into()));
                }
                (r, st)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else if part.contains('/') {
            (value(range)?, hi)
        } else {
            let v = value(range)?;
            (v, v)
        };
        if a > b {
            return Err(bad(format!("the range {a}-{b} is backwards")));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_parse_in_every_spelling_clients_use() {
        assert_eq!(parse_interval("00:00:05"), Ok(5));
        assert_eq!(parse_interval("5"), Ok(5));
        assert_eq!(parse_interval("1:30"), Ok(90));
        assert_eq!(parse_interval("1 02:00:00"), Ok(93_600));
        assert_eq!(parse_interval("00:00:05.500000"), Ok(5));
        assert_eq!(parse_interval("PT5S"), Ok(5));
        assert_eq!(parse_interval("P1DT1H"), Ok(90_000));
        assert_eq!(parse_interval("P2W"), Ok(14 * 86_400));
        for bad in ["", "x", "1:2:3:4", "-5", "P", "PT", "P1Y", "1::2", "5.", "-P1D", "1 x"] {
            assert!(parse_interval(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(format_interval(5), "00:00:05");
        assert_eq!(format_interval(93_605), "1 02:00:05");
        for s in [1, 59, 3600, 86_399, 86_400, 1_000_000] {
            assert_eq!(parse_interval(&format_interval(s)), Ok(s));
        }
    }

    #[test]
    fn an_interval_keeps_its_phase_and_skips_what_was_missed() {
        let c = Cadence::every(10).unwrap();
        let due = at("2026-01-01T00:00:00Z");
        // fired on time: the next slot
        assert_eq!(c.next_after(due, due), at("2026-01-01T00:00:10Z"));
        // fired 2 s late: still in phase
        assert_eq!(
            c.next_after(due, at("2026-01-01T00:00:02Z")),
            at("2026-01-01T00:00:10Z")
        );
        // down for an hour: one firing now, the next slot after now (not 360 catch-ups)
        assert_eq!(
            c.next_after(due, at("2026-01-01T01:00:03Z")),
            at("2026-01-01T01:00:10Z")
        );
        // exactly on a slot: the one after it
        assert_eq!(
            c.next_after(due, at("2026-01-01T00:00:30Z")),
            at("2026-01-01T00:00:40Z")
        );
        assert!(Cadence::every(0).is_err());
    }

    #[test]
    fn cron_expressions_name_the_minutes_they_fire() {
        let next = |e: &str, t: &str| Cron::parse(e).unwrap().next_after(at(t)).unwrap();
        assert_eq!(next("*/15 * * * *", "2026-01-01T00:07:30Z"), at("2026-01-01T00:15:00Z"));
        assert_eq!(next("*/15 * * * *", "2026-01-01T00:15:00Z"), at("2026-01-01T00:30:00Z"));
        assert_eq!(next("0 3 * * *", "2026-01-01T03:00:00Z"), at("2026-01-02T03:00:00Z"));
        assert_eq!(next("30 2 1 * *", "2026-01-15T00:00:00Z"), at("2026-02-01T02:30:00Z"));
        // 2026-01-05 is a Monday
        assert_eq!(
            next("0 9 * * mon-fri", "2026-01-03T12:00:00Z"),
            at("2026-01-05T09:00:00Z")
        );
        assert_eq!(next("0 0 * * 7", "2026-01-01T00:00:00Z"), at("2026-01-04T00:00:00Z"));
        // both day fields restricted: either matches (the 10th, or a Sunday)
        assert_eq!(next("0 0 10 * sun", "2026-01-05T00:00:00Z"), at("2026-01-10T00:00:00Z"));
        assert_eq!(next("0 0 29 feb *", "2026-03-01T00:00:00Z"), at("2028-02-29T00:00:00Z"));
        assert_eq!(next("@daily", "2026-12-31T23:59:59Z"), at("2027-01-01T00:00:00Z"));
        assert_eq!(
            next("5,10-12 1 * * *", "2026-01-01T01:10:00Z"),
            at("2026-01-01T01:11:00Z")
        );
        assert_eq!(
            Cron::parse("0 0 30 2 *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z")),
            None
        );
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * * foo *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let c = Cadence::cron("*/5 * * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-01-01T00:00:00Z"), at("2026-01-01T06:02:00Z")),
            at("2026-01-01T06:05:00Z")
        );
    }
}

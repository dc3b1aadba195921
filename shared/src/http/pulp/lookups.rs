//! Pulp's filter lookups read from the query string: every name lookup
//! (`NAME_FILTER_OPTIONS`), `ordering`, booleans and date-times, with Django's words for
//! values it refuses.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use uuid::Uuid;

use super::{ApiError, Ctx};
use crate::services::{NameFilter, NamePattern, Sort, SortKey, TimeFilter};

/// The name filters with all of Pulp's name lookups (`name`, `__iexact`, `__in`,
/// `__contains`, `__icontains`, `__startswith`, `__istartswith`, `__regex`, `__iregex`), and
/// `pulp_href__in` and `prn__in` by the resource's `href` and `prn` spellings.
pub(super) fn names(
    c: &Ctx<'_>,
    href: impl Fn(Uuid) -> String,
    prn: impl Fn(Uuid) -> String,
) -> Result<NameFilter, ApiError> {
    let mut f = c.names(href, prn);
    f.name_iexact = c.q_owned("name__iexact");
    f.name_istartswith = c.q_owned("name__istartswith");
    let pattern = |k: &str, case_insensitive: bool| match c.q(k) {
        None => Ok(None),
        Some(p) => NamePattern::new(p, case_insensitive)
            .map(Some)
            .map_err(|_| ApiError::field(k, "Enter a valid regular expression.")),
    };
    f.name_regex = pattern("name__regex", false)?;
    f.name_iregex = pattern("name__iregex", true)?;
    Ok(f)
}

/// `ordering`: fields of `allowed`, each `-` first for descending.
pub(super) fn ordering(c: &Ctx<'_>, allowed: &[(&str, SortKey)]) -> Result<Sort, ApiError> {
    let mut keys = Vec::new();
    for item in c.q_list("ordering").unwrap_or_default() {
        let (field, desc) = match item.strip_prefix('-') {
            Some(f) => (f, true),
            None => (item.as_str(), false),
        };
        let Some((_, key)) = allowed.iter().find(|(name, _)| *name == field) else {
            return Err(ApiError::field(
                "ordering",
                format!("Select a valid choice. {item} is not one of the available choices."),
            ));
        };
        keys.push((*key, desc));
    }
    Ok(Sort(keys))
}

/// A boolean lookup as django-filter reads it: `true`/`false`/`1`/`0` in any case; anything
/// else filters nothing.
pub(super) fn boolean(c: &Ctx<'_>, k: &str) -> Option<bool> {
    match c.q(k)?.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// An ISO 8601 date-time (a date alone is its midnight; without an offset, UTC, Pulp's time
/// zone).
fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    let t = match v.get(10..11) {
        Some(" ") => format!("{}T{}", &v[..10], &v[11..]),
        _ => v.to_owned(),
    };
    let t = t.strip_suffix('Z').map_or(t.clone(), |s| format!("{s}+00:00"));
    for f in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(&t, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&t, f) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(&t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

const BAD_TIME: &str = "Enter a valid date/time.";

/// The date-time lookups of `field` (`field`, `__lt`, `__lte`, `__gt`, `__gte`, `__range`,
/// `__isnull`).
pub(super) fn times(c: &Ctx<'_>, field: &str) -> Result<TimeFilter, ApiError> {
    let one = |k: String| match c.q_set(&k) {
        None => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(|| ApiError::field(&k, BAD_TIME)),
    };
    let range = match c.q_list(&format!("{field}__range")) {
        None => None,
        Some(vs) => {
            let k = format!("{field}__range");
            let [a, b] = vs.as_slice() else {
                return Err(ApiError::field(&k, "Range query expects two values."));
            };
            match (parse_time(a), parse_time(b)) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => return Err(ApiError::field(&k, BAD_TIME)),
            }
        }
    };
    Ok(TimeFilter {
        exact: one(field.to_owned())?,
        lt: one(format!("{field}__lt"))?,
        lte: one(format!("{field}__lte"))?,
        gt: one(format!("{field}__gt"))?,
        gte: one(format!("{field}__gte"))?,
        range,
        isnull: boolean(c, &format!("{field}__isnull")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_parse_as_django_s_iso_8601_does() {
        let t = |s: &str| parse_time(s).map(|d| d.to_rfc3339());
        assert_eq!(t("2024-05-01T10:20:30Z").as_deref(), Some("2024-05-01T10:20:30+00:00"));
        assert_eq!(
            t("2024-05-01 10:20:30.5").as_deref(),
            Some("2024-05-01T10:20:30.500+00:00")
        );
        assert_eq!(
            t("2024-05-01T12:20:30+02:00").as_deref(),
            Some("2024-05-01T10:20:30+00:00")
        );
        assert_eq!(t("2024-05-01T10:20").as_deref(), Some("2024-05-01T10:20:00+00:00"));
        assert_eq!(t("2024-05-01").as_deref(), Some("2024-05-01T00:00:00+00:00"));
        for bad in ["", "yesterday", "2024-13-01", "2024-05-01T25:00:00Z"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}

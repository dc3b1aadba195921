//! `Range` (blob GET) and `Content-Range` (upload PATCH) headers.

use crate::ports::ByteRange;

/// The answer to a `Range` header for a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Serve the whole blob (no header).
    Full,
    /// Serve this part with 206.
    Partial(ByteRange),
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (`a-b`, `a-`, `-n`) against the blob's size. Anything
/// malformed, multi-range or outside the blob is unsatisfiable.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(h) = header else {
        return RangeAnswer::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Unsatisfiable;
    };
    if spec.contains(',') {
        return RangeAnswer::Unsatisfiable;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Unsatisfiable;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (a.trim().is_empty(), b.trim().is_empty()) {
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e && s < size => Some((s, e.min(size - 1))),
            _ => None,
        },
        (false, true) => match num(a) {
            Some(s) if s < size => Some((s, size - 1)),
            _ => None,
        },
        (true, false) => match num(b) {
            Some(n) if n > 0 && size > 0 => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        },
        (true, true) => None,
    };
    match range {
        Some((start, end)) => RangeAnswer::Partial(ByteRange { start, end }),
        None => RangeAnswer::Unsatisfiable,
    }
}

/// Parses an upload's `Content-Range` (`<start>-<end>`, optionally with a `bytes ` prefix).
pub fn parse_content_range(header: &str) -> Option<(u64, u64)> {
    let h = header.trim();
    let h = h.strip_prefix("bytes ").unwrap_or(h).trim();
    let h = h.split('/').next()?;
    let (a, b) = h.split_once('-')?;
    let (s, e) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (s <= e).then_some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: u64, e: u64) -> RangeAnswer {
        RangeAnswer::Partial(ByteRange { start: s, end: e })
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeAnswer::Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), p(0, 4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), p(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), p(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), p(0, 9));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), p(8, 9));
        for bad in [
            "bytes=10-",
            "bytes=5-2",
            "bytes=x-1",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-0",
            "bytes=-",
        ] {
            assert_eq!(parse_range(Some(bad), 10), RangeAnswer::Unsatisfiable, "{bad}");
        }
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, 199)));
        assert_eq!(parse_content_range("9-1"), None);
        assert_eq!(parse_content_range("x"), None);
    }
}

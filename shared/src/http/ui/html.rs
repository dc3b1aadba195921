//! Writing HTML safely: every value written into a page goes through [`Esc`], which escapes
//! `& < > " '` (so it is safe in text and in double- or single-quoted attributes). The
//! [`w!`](crate::w) macro takes a literal format string and escapes each of its arguments;
//! markup itself only ever comes from string literals ([`Html::raw`] takes `&'static str`)
//! or from another [`Html`] built the same way. Never write `{name}` captures in a `w!`
//! format string: they would bypass the escaping.
//!
//! Also the small formatters the pages share: sizes, times, digests.

use std::fmt::{self, Display, Write as _};

use chrono::{DateTime, Utc};

/// A value written escaped.
pub struct Esc<'a, T: ?Sized>(pub &'a T);

/// Escapes everything written through it into the formatter it wraps.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            self.0.write_str(entity)?;
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

impl<T: Display + ?Sized> Display for Esc<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// `s` escaped.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

/// A piece of a page: markup from literals, values escaped.
#[derive(Default)]
pub struct Html(String);

impl Html {
    pub fn new() -> Self {
        Html(String::new())
    }

    /// Markup from a literal.
    pub fn raw(&mut self, s: &'static str) {
        self.0.push_str(s);
    }

    /// A value, escaped.
    pub fn text(&mut self, v: impl Display) {
        let _ = write!(self.0, "{}", Esc(&v));
    }

    /// Another piece, built the same way.
    pub fn html(&mut self, h: Html) {
        self.0.push_str(&h.0);
    }

    /// What `w!` writes: its arguments were wrapped in [`Esc`].
    pub fn push_fmt(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.0.write_fmt(args);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `w!(html, "<td>{}</td>", value, …)`: the literal as markup, each argument escaped.
macro_rules! w {
    ($h:expr, $fmt:literal $(, $arg:expr)* $(,)?) => {
        $h.push_fmt(format_args!($fmt $(, $crate::http::ui::html::Esc(&$arg))*))
    };
}
pub(crate) use w;

/// A byte count as people read it: `512 B`, `1.5 KiB`, `23.4 MiB`, `1.2 GiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// A time in UTC to the second: `2026-05-01 12:00:03 UTC`.
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_markup_is_not() {
        let mut h = Html::new();
        let name = "<script>alert('x')</script> & \"q\"";
        w!(h, "<td title=\"{}\">{}</td>", name, name);
        h.raw("<br>");
        h.text("a<b");
        assert_eq!(
            h.into_string(),
            "<td title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\">\
             &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</td><br>a&lt;b"
        );
        assert_eq!(escape("ünïcödé ✓"), "ünïcödé ✓");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(50 * 1024 * 1024), "50 MiB");
        assert_eq!(size(u64::MAX), "16384 PiB");
    }
}

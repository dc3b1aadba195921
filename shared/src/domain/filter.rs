//! Tag filters: shell wildcards (`*`, `?`, `[seq]`, `[!seq]`) matched against whole tags, as
//! Python's `fnmatch` does for Pulp; includes first, then excludes. An include may also be a
//! `sha256:` digest, which selects that manifest.

use super::{Digest, DomainError};

/// One validated wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Validates `p`: non-empty, at most 256 characters, tag characters and wildcards only,
    /// every `[` closed.
    pub fn parse(p: &str) -> Result<Self, DomainError> {
        Self::parse_with(p, false)
    }

    /// Validates a pattern over repository names: as [`Pattern::parse`], and `/` too (which
    /// `*` matches, as in Python's `fnmatch`).
    pub fn parse_name(p: &str) -> Result<Self, DomainError> {
        Self::parse_with(p, true)
    }

    fn parse_with(p: &str, names: bool) -> Result<Self, DomainError> {
        let bad = |why: &str| DomainError::InvalidPattern(format!("{p:?}: {why}"));
        if p.is_empty() {
            return Err(bad("empty"));
        }
        if p.len() > 256 {
            return Err(bad("longer than 256 characters"));
        }
        let b = p.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'[' => {
                    let mut j = i + 1;
                    if j < b.len() && (b[j] == b'!' || b[j] == b'^') {
                        j += 1;
                    }
                    if j < b.len() && b[j] == b']' {
                        j += 1;
                    }
                    while j < b.len() && b[j] != b']' {
                        j += 1;
                    }
                    if j >= b.len() {
                        return Err(bad("unclosed '['"));
                    }
                    i = j + 1;
                }
                c if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'*' | b'?' | b':') => i += 1,
                b'/' if names => i += 1,
                _ if names => return Err(bad("only name characters and the wildcards * ? [ ] are allowed")),
                _ => return Err(bad("only tag characters and the wildcards * ? [ ] are allowed")),
            }
        }
        Ok(Pattern(p.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the whole of `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        glob(self.0.as_bytes(), s.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // iterative matcher with backtracking to the last '*'
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(p, pi, s[si]) {
                        if matched {
                            pi = next;
                            si += 1;
                            continue;
                        }
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Matches `c` against the class starting at `p[i] == '['`; returns (matched, index after `]`).
fn class(p: &[u8], i: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = i + 1;
    let negate = j < p.len() && (p[j] == b'!' || p[j] == b'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    while j < p.len() && (first || p[j] != b']') {
        first = false;
        if j + 2 < p.len() && p[j + 1] == b'-' && p[j + 2] != b']' {
            if p[j] <= c && c <= p[j + 2] {
                matched = true;
            }
            j += 3;
        } else {
            if p[j] == c {
                matched = true;
            }
            j += 1;
        }
    }
    if j >= p.len() {
        return None;
    }
    Some((matched != negate, j + 1))
}

/// A remote's tag selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter {
    pub includes: Vec<Pattern>,
    pub excludes: Vec<Pattern>,
    /// `sha256:` digests among the includes.
    pub digests: Vec<Digest>,
}

impl TagFilter {
    /// Builds a filter; `includes` entries that look like digests must be valid digests.
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Self, DomainError> {
        let mut f = TagFilter::default();
        for i in includes {
            if i.starts_with("sha256:") || i.starts_with("sha512:") {
                f.digests.push(Digest::parse(i)?);
            } else {
                f.includes.push(Pattern::parse(i)?);
            }
        }
        for e in excludes {
            f.excludes.push(Pattern::parse(e)?);
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.includes.is_empty() && self.excludes.is_empty() && self.digests.is_empty()
    }

    /// Whether `tag` is selected: it matches an include (or there are no pattern includes and
    /// no digest includes) and no exclude.
    pub fn selects(&self, tag: &str) -> bool {
        let included = if self.includes.is_empty() {
            self.digests.is_empty()
        } else {
            self.includes.iter().any(|p| p.matches(tag))
        };
        included && !self.excludes.iter().any(|p| p.matches(tag))
    }

    /// When every include is a literal tag (no wildcard) or a digest, the tags to fetch
    /// directly without listing the upstream's tags.
    pub fn literal_includes(&self) -> Option<Vec<String>> {
        if self.includes.is_empty() && self.digests.is_empty() {
            return None;
        }
        let lit = |p: &Pattern| !p.as_str().contains(['*', '?', '[']);
        if !self.includes.iter().all(lit) {
            return None;
        }
        Some(
            self.includes
                .iter()
                .map(|p| p.as_str().to_owned())
                .filter(|t| self.selects(t))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn wildcards_match_like_fnmatch() {
        assert!(m("*", "anything"));
        assert!(m("v1*", "v1.2.3"));
        assert!(!m("v1*", "xv1"));
        assert!(m("*-rc", "2.0-rc"));
        assert!(!m("*-rc", "2.0-rc1"));
        assert!(m("v?", "v1"));
        assert!(!m("v?", "v10"));
        assert!(m("v[0-9]", "v7"));
        assert!(!m("v[!0-9]", "v7"));
        assert!(m("v[!0-9]", "vx"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("latest", "latest"));
        assert!(!m("latest", "Latest"));
        assert!(m("[]]", "]"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "v1[", "a/b", "a b", "x\u{e9}"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_apply_includes_then_excludes() {
        let f = TagFilter::new(&["v1*".into()], &["*-rc".into()]).unwrap();
        assert!(f.selects("v1.0"));
        assert!(!f.selects("v1.0-rc"));
        assert!(!f.selects("v2.0"));
        let all = TagFilter::new(&[], &["*-beta".into()]).unwrap();
        assert!(all.selects("anything"));
        assert!(!all.selects("1-beta"));
        let d = Digest::sha256_of(b"m").to_string();
        let by_digest = TagFilter::new(std::slice::from_ref(&d), &[]).unwrap();
        assert!(!by_digest.selects("latest"));
        assert_eq!(by_digest.digests.len(), 1);
        assert_eq!(by_digest.literal_includes(), Some(vec![]));
        let lit = TagFilter::new(&["1.0".into(), "latest".into()], &["latest".into()]).unwrap();
        assert_eq!(lit.literal_includes(), Some(vec!["1.0".to_string()]));
        assert_eq!(f.literal_includes(), None);
        assert!(TagFilter::new(&["sha256:zz".into()], &[]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(p in "[a-z0-9*?\\[\\]!.-]{0,12}", s in "[a-z0-9.-]{0,12}") {
            if let Ok(p) = Pattern::parse(&p) {
                let _ = p.matches(&s);
            }
        }

        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z0-9]{1,8}", b in "[a-z0-9]{1,8}") {
            prop_assert_eq!(Pattern::parse(&a).unwrap().matches(&b), a == b);
            prop_assert!(Pattern::parse("*").unwrap().matches(&b));
        }
    }
}

/// Which upstream repositories a pull-through remote caches: shell wildcards over whole
/// names (`library/*`, `org/app`), includes first (none: every name), then excludes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFilter {
    pub includes: Vec<Pattern>,
    pub excludes: Vec<Pattern>,
}

impl NameFilter {
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Self, DomainError> {
        Ok(NameFilter {
            includes: includes
                .iter()
                .map(|p| Pattern::parse_name(p))
                .collect::<Result<_, _>>()?,
            excludes: excludes
                .iter()
                .map(|p| Pattern::parse_name(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `name` is cached: it matches an include (or there are none) and no exclude.
    pub fn selects(&self, name: &str) -> bool {
        (self.includes.is_empty() || self.includes.iter().any(|p| p.matches(name)))
            && !self.excludes.iter().any(|p| p.matches(name))
    }
}

#[cfg(test)]
mod name_tests {
    use super::NameFilter;

    #[test]
    fn name_filters_match_whole_names_with_slashes() {
        let f = NameFilter::new(&["library/*".into(), "org/app".into()], &["library/bad*".into()]).unwrap();
        assert!(f.selects("library/busybox"));
        assert!(f.selects("org/app"));
        assert!(!f.selects("org/app2"));
        assert!(!f.selects("library/badger"));
        assert!(!f.selects("other/busybox"));
        assert!(NameFilter::default().selects("any/thing"));
        assert!(NameFilter::new(&["a b".into()], &[]).is_err());
        assert!(NameFilter::new(&["a/[b".into()], &[]).is_err());
    }
}

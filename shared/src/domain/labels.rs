//! Label selection (`pulp_label_select`) as pulpcore's `LabelFilter` reads it: terms separated
//! by commas, each `key=value` (equal), `key!=value` (present and different), `key~value`
//! (contains, ignoring case), `key` (present) or `!key` (absent); all must hold.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `domain`: pure.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    Differs(String, String),
    Contains(String, String),
    Present(String),
    Absent(String),
}

/// A parsed label selection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelect(Vec<Term>);

impl LabelSelect {
    /// Parses a selection; the error is pulpcore's message.
    pub fn parse(s: &str) -> Result<LabelSelect, String> {
        let mut terms = Vec::new();
        for term in s.split(',') {
            let (negated, rest) = match term.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, term),
            };
            let end = rest
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || c.is_whitespace()))
                .map_or(rest.len(), |(i, _)| i);
            if end == 0 {
                return Err(format!("Invalid search term: '{term}'."));
            }
            let (key, after) = (rest[..end].to_owned(), &rest[end..]);
            let op = ["!=", "=", "~"].into_iter().find(|op| after.starts_with(op));
            if negated && op.is_some() {
                return Err(format!("Cannot use an operator with '!{key}'."));
            }
            let value = |op: &str| after[op.len()..].to_owned();
            terms.push(match op {
                Some("=") => Term::Equals(key, value("=")),
                Some("!=") => Term::Differs(key, value("!=")),
                Some(_) => Term::Contains(key, value("~")),
                None if negated => Term::Absent(key),
                None => Term::Present(key),
            });
        }
        Ok(LabelSelect(terms))
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|t| match t {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::Differs(k, v) => labels.get(k).is_some_and(|x| x != v),
            Term::Contains(k, v) => labels
                .get(k)
                .is_some_and(|x| x.to_lowercase().contains(&v.to_lowercase())),
            Term::Present(k) => labels.contains_key(k),
            Term::Absent(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn terms_select_as_pulpcore_does() {
        let l = labels(&[("env", "Prod"), ("team", "a")]);
        for (sel, want) in [
            ("env=Prod", true),
            ("env=prod", false),
            ("env!=dev", true),
            ("env!=Prod", false),
            ("missing!=x", false),
            ("env~ro", true),
            ("env~RO", true),
            ("env", true),
            ("!env", false),
            ("!missing", true),
            ("env=Prod,team=a", true),
            ("env=Prod,team=b", false),
        ] {
            assert_eq!(LabelSelect::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
        assert!(LabelSelect::parse("!env").unwrap().matches(&BTreeMap::new()));
        assert!(!LabelSelect::parse("env").unwrap().matches(&BTreeMap::new()));
    }

    #[test]
    fn malformed_terms_are_refused() {
        assert_eq!(LabelSelect::parse("=x").unwrap_err(), "Invalid search term: '=x'.");
        assert_eq!(LabelSelect::parse("a,").unwrap_err(), "Invalid search term: ''.");
        assert_eq!(
            LabelSelect::parse("!a=b").unwrap_err(),
            "Cannot use an operator with '!a'."
        );
    }
}

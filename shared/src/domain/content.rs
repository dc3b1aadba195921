//! Content units that repository versions are made of, and content summaries.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Digest, Tag};

/// The content types a repository version counts, with Pulp's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ContentType {
    #[serde(rename = "container.blob")]
    Blob,
    #[serde(rename = "container.manifest")]
    Manifest,
    #[serde(rename = "container.tag")]
    Tag,
    #[serde(rename = "container.signature")]
    Signature,
}

impl ContentType {
    pub const ALL: [ContentType; 4] = [
        ContentType::Blob,
        ContentType::Manifest,
        ContentType::Tag,
        ContentType::Signature,
    ];

    /// Pulp's name: `container.blob`, …
    pub fn pulp_name(self) -> &'static str {
        match self {
            ContentType::Blob => "container.blob",
            ContentType::Manifest => "container.manifest",
            ContentType::Tag => "container.tag",
            ContentType::Signature => "container.signature",
        }
    }

    /// The one-letter prefix of this type's keys.
    pub fn prefix(self) -> &'static str {
        match self {
            ContentType::Blob => "b#",
            ContentType::Manifest => "m#",
            ContentType::Tag => "t#",
            ContentType::Signature => "s#",
        }
    }
}

/// One content unit as a repository version holds it. Tags are content too: a tag unit is a
/// name bound to a manifest digest, so moving a tag removes one unit and adds another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentKey {
    Blob(Digest),
    Manifest(Digest),
    Tag { name: Tag, manifest: Digest },
    Signature(Digest),
}

impl ContentKey {
    pub fn content_type(&self) -> ContentType {
        match self {
            ContentKey::Blob(_) => ContentType::Blob,
            ContentKey::Manifest(_) => ContentType::Manifest,
            ContentKey::Tag { .. } => ContentType::Tag,
            ContentKey::Signature(_) => ContentType::Signature,
        }
    }

    /// A stable, order-preserving string form: `b#<digest>`, `m#<digest>`,
    /// `t#<tag>#<digest>`, `s#<digest>`. Tags sort by name.
    pub fn encode(&self) -> String {
        match self {
            ContentKey::Blob(d) => format!("b#{d}"),
            ContentKey::Manifest(d) => format!("m#{d}"),
            ContentKey::Tag { name, manifest } => format!("t#{name}#{manifest}"),
            ContentKey::Signature(d) => format!("s#{d}"),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_once('#')?;
        match kind {
            "b" => Digest::parse(rest).ok().map(ContentKey::Blob),
            "m" => Digest::parse(rest).ok().map(ContentKey::Manifest),
            "s" => Digest::parse(rest).ok().map(ContentKey::Signature),
            "t" => {
                let (name, d) = rest.split_once('#')?;
                Some(ContentKey::Tag {
                    name: Tag::parse(name).ok()?,
                    manifest: Digest::parse(d).ok()?,
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// Counts per content type.
pub type ContentTypeCounts = BTreeMap<ContentType, u64>;

/// What a repository version added, removed and holds, per content type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    pub added: ContentTypeCounts,
    pub removed: ContentTypeCounts,
    pub present: ContentTypeCounts,
}

impl ContentSummary {
    /// The summary of a version made from `base` (the previous version's summary) by adding
    /// and removing the given keys.
    pub fn derive<'a>(
        base: &ContentSummary,
        added: impl IntoIterator<Item = &'a ContentKey>,
        removed: impl IntoIterator<Item = &'a ContentKey>,
    ) -> ContentSummary {
        let mut s = ContentSummary {
            present: base.present.clone(),
            ..Default::default()
        };
        for k in added {
            *s.added.entry(k.content_type()).or_default() += 1;
            *s.present.entry(k.content_type()).or_default() += 1;
        }
        for k in removed {
            *s.removed.entry(k.content_type()).or_default() += 1;
            let p = s.present.entry(k.content_type()).or_default();
            *p = p.saturating_sub(1);
        }
        s.present.retain(|_, v| *v > 0);
        s
    }

    pub fn is_empty_change(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let d = Digest::sha256_of(b"x");
        for k in [
            ContentKey::Blob(d.clone()),
            ContentKey::Manifest(d.clone()),
            ContentKey::Signature(d.clone()),
            ContentKey::Tag {
                name: Tag::parse("v1.0").unwrap(),
                manifest: d.clone(),
            },
        ] {
            assert_eq!(ContentKey::decode(&k.encode()), Some(k));
        }
        assert_eq!(ContentKey::decode("x#y"), None);
    }

    #[test]
    fn summaries_count_changes() {
        let a = ContentKey::Blob(Digest::sha256_of(b"a"));
        let b = ContentKey::Blob(Digest::sha256_of(b"b"));
        let m = ContentKey::Manifest(Digest::sha256_of(b"m"));
        let v1 = ContentSummary::derive(&ContentSummary::default(), [&a, &b, &m], []);
        assert_eq!(v1.present[&ContentType::Blob], 2);
        let v2 = ContentSummary::derive(&v1, [], [&a]);
        assert_eq!(v2.removed[&ContentType::Blob], 1);
        assert_eq!(v2.present[&ContentType::Blob], 1);
        assert!(!v2.added.contains_key(&ContentType::Blob));
        let json = serde_json::to_value(&v2).unwrap();
        assert_eq!(json["present"]["container.manifest"], 1);
    }
}

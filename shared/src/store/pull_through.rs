//! What pull-through caching keeps beyond ordinary repositories: when a cached tag was last
//! checked upstream, and the lookup of the pull-through distribution a base path falls under.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `checked#<repository id>` | `<tag>` | [`TagCheck`] |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, encode, Distribution, Store};
use crate::domain::{Digest, RepoName, Tag};
use crate::ports::{Cond, StoreError};

/// The last time a cached tag was compared with the upstream, and the digest it had then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCheck {
    pub digest: Digest,
    pub at: DateTime<Utc>,
}

impl Store {
    /// When `tag` of cached repository `repo` was last checked upstream.
    pub async fn tag_check(&self, repo: Uuid, tag: &Tag) -> Result<Option<TagCheck>, StoreError> {
        match self.t.get(&format!("checked#{repo}"), tag.as_str()).await? {
            Some(row) => Ok(Some(decode(&row)?)),
            None => Ok(None),
        }
    }

    pub async fn set_tag_check(&self, repo: Uuid, tag: &Tag, check: &TagCheck) -> Result<(), StoreError> {
        self.t
            .put(&format!("checked#{repo}"), tag.as_str(), encode(check)?, Cond::Any)
            .await
            .map(|_| ())
    }

    /// The pull-through distribution whose base path is the longest proper prefix of `name`
    /// (by whole segments), with the rest of the name: the upstream path. One read per
    /// segment at most.
    pub async fn pull_through_of(&self, name: &RepoName) -> Result<Option<(Distribution, String)>, StoreError> {
        let s = name.as_str();
        let mut cut = s.len();
        while let Some(i) = s[..cut].rfind('/') {
            cut = i;
            let Ok(prefix) = RepoName::parse(&s[..cut]) else {
                continue;
            };
            if let Some(d) = self.distribution_by_base_path(&prefix).await? {
                if d.pull_through {
                    return Ok(Some((d, s[cut + 1..].to_owned())));
                }
            }
        }
        Ok(None)
    }
}

//! What pull-through caching keeps beyond ordinary repositories: when a cached tag was last
//! checked upstream, and the lookup of the pull-through distribution a base path falls under.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `checked#<repository id>` | `<tag>` | [`TagCheck`] |
//! | `copying#<blob digest>` | `_` | when a copy of the blob into the blob store was claimed |

use std::time::Duration;

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

    /// Claims the copy of `digest` from upstream into the blob store, so that concurrent
    /// misses (in any instance) start one copy. `false` while another claim younger than
    /// `stale` holds; an older one is taken over (its copier died).
    pub async fn claim_blob_copy(&self, digest: &Digest, stale: Duration) -> Result<bool, StoreError> {
        let pk = format!("copying#{digest}");
        let now = Utc::now();
        let cond = match self.get_json::<DateTime<Utc>>(&pk, "_").await? {
            None => Cond::Absent,
            Some((rev, since)) if now.signed_duration_since(since).to_std().unwrap_or_default() >= stale => {
                Cond::Rev(rev)
            }
            Some(_) => return Ok(false),
        };
        match self
            .t
            .put_expiring(&pk, "_", encode(&now)?, cond, Some(super::expiry_in(stale * 4)))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends a claim of [`Store::claim_blob_copy`] (the copy finished or failed).
    pub async fn release_blob_copy(&self, digest: &Digest) -> Result<(), StoreError> {
        self.t.delete(&format!("copying#{digest}"), "_", Cond::Any).await
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

//! Orphans: content no repository references any more, and how it is removed.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `stored/<shard>` | `<content key>` | `{"at": <Unix seconds>}`: a blob or manifest was stored or reused then |
//! | `content#<type prefix>/<shard>` | `<content key>` | `{"id", "at"}`: it was added to some version, last at `at` |
//!
//! Together the two indexes (each spread over shards: see `shards.rs`) list every unit that may have to be removed one day. A unit
//! is referenced while a membership row of a live repository puts it in one of the
//! repository's versions (or stages it for the next one, a write in progress), or a repository
//! holds it as a pending upload.
//!
//! Removal is safe against writers running at the same time: every writer that brings a unit
//! (back) into a repository first writes the row that references it (a staged membership row, a
//! pending row) and then rewrites one of the unit's index rows (`record_content`,
//! `add_pending_blob`, `put_blob`). Cleanup reads the index rows with their revisions *before*
//! it reads what references them, and removes a unit only by conditional deletes of those rows
//! at those revisions: a writer that came in between changed a revision, and the unit stays.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::tally::Counted;
use super::{content_id, decode, shards, Membership, Store};
use crate::domain::{ContentKey, ContentType};
use crate::ports::{Cond, Query, StoreError, Write};

/// A unit cleanup may remove: its key, when it was last stored, reused or added to a version,
/// and the index rows
/// (with revisions) it was seen with.
#[derive(Debug, Clone)]
pub struct OrphanCandidate {
    pub key: ContentKey,
    pub touched: Option<u64>,
    rows: Vec<IndexRow>,
}

/// An index row of a unit: its partition and revision.
type IndexRow = (String, u64);

#[derive(Serialize, Deserialize)]
struct Touched {
    at: u64,
}

impl Store {
    /// Every unit in the index partitions, with the revisions of its rows.
    pub async fn orphan_candidates(&self) -> Result<Vec<OrphanCandidate>, StoreError> {
        let mut found: BTreeMap<ContentKey, (Option<u64>, Vec<IndexRow>)> = BTreeMap::new();
        let mut partitions: Vec<String> = Vec::new();
        for ty in ContentType::ALL {
            partitions.extend(shards::partitions(&format!("content#{}", ty.prefix())));
        }
        partitions.extend(shards::partitions("stored"));
        for pk in partitions {
            for row in self.t.query(&pk, Query::prefix("")).await? {
                if let Some(key) = ContentKey::decode(&row.sk) {
                    let entry = found.entry(key).or_default();
                    if let Ok(t) = serde_json::from_slice::<Touched>(&row.value) {
                        entry.0 = entry.0.max(Some(t.at));
                    }
                    entry.1.push((pk.clone(), row.rev));
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(key, (touched, rows))| OrphanCandidate { key, touched, rows })
            .collect())
    }

    /// Every unit a live repository references: in one of its versions, staged for its next
    /// version by a write in progress, or uploaded to it and pending. Units only deleted
    /// versions held are not referenced.
    pub async fn referenced_content(&self) -> Result<HashSet<ContentKey>, StoreError> {
        let mut keys = HashSet::new();
        for repo in self.repositories().await? {
            let versions: Vec<u64> = self.versions(&repo).await?.iter().map(|v| v.number).collect();
            for row in self.t.query(&format!("members#{}", repo.id), Query::prefix("")).await? {
                let m: Membership = decode(&row)?;
                let staged = m.added > repo.latest_version;
                if staged || versions.iter().any(|n| m.in_version(*n)) {
                    if let Some(k) = super::key_of_member(&row.sk) {
                        keys.insert(k);
                    }
                }
            }
            for row in self.t.query(&format!("pending#{}", repo.id), Query::prefix("")).await? {
                if let Ok(d) = crate::domain::Digest::parse(&row.sk) {
                    keys.insert(ContentKey::Blob(d));
                }
            }
        }
        Ok(keys)
    }

    /// Removes a candidate's index rows, each only at the revision it was seen with. `false`
    /// (and the unit stays listed) when a writer touched it since.
    pub async fn forget_candidate(&self, c: &OrphanCandidate) -> Result<bool, StoreError> {
        let sk = c.key.encode();
        for (pk, rev) in &c.rows {
            if !self.forget_row(pk, &sk, *rev).await? {
                return Ok(false);
            }
        }
        self.t
            .delete(&format!("cid#{}", content_id(&c.key)), "_", Cond::Any)
            .await?;
        Ok(true)
    }

    /// Removes one index row at revision `rev`, counted out of its content partition's tally.
    /// `false` when the row changed since.
    async fn forget_row(&self, pk: &str, sk: &str, rev: u64) -> Result<bool, StoreError> {
        loop {
            let mut writes = vec![Write::delete(pk, sk, Cond::Rev(rev))];
            if pk.starts_with("content#") {
                writes.push(self.tally_write(pk, &[Counted::removed(sk)]).await?);
                writes.extend(self.bytes_removed(pk, sk, rev).await?);
            }
            match self.t.transact(writes).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict(_)) => {
                    // the row, or only its tally?
                    if self.t.get(pk, sk).await?.is_none_or(|row| row.rev != rev) {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a manifest's record and its entry in its subject's referrers.
    pub async fn delete_manifest_record(&self, digest: &crate::domain::Digest) -> Result<(), StoreError> {
        if let Some(rec) = self.manifest(digest).await? {
            if let Some(subject) = &rec.parsed.subject {
                self.t
                    .delete(&format!("subject#{}", subject.digest), digest.as_str(), Cond::Any)
                    .await?;
            }
        }
        self.t.delete(&format!("manifest#{digest}"), "_", Cond::Any).await
    }

    pub async fn delete_blob_record(&self, digest: &crate::domain::Digest) -> Result<(), StoreError> {
        self.t.delete(&format!("blob#{digest}"), "_", Cond::Any).await
    }

    /// Removes a signature's record and its entry under the manifest it signs.
    pub async fn delete_signature_record(&self, digest: &crate::domain::Digest) -> Result<(), StoreError> {
        if let Some(rec) = self.signature(digest).await? {
            self.t
                .delete(&format!("signed#{}", rec.signed), digest.as_str(), Cond::Any)
                .await?;
        }
        self.t.delete(&format!("signature#{digest}"), "_", Cond::Any).await
    }

    /// Marks a stored blob or manifest as (re)used now: its `stored` row is rewritten, which
    /// protects it from cleanups for their protection time and fails a cleanup running now.
    pub async fn touch_stored(&self, key: &ContentKey) -> Result<(), StoreError> {
        let at = crate::ports::unix_now();
        let sk = key.encode();
        self.t
            .put(
                &shards::shard("stored", &sk),
                &sk,
                serde_json::to_vec(&Touched { at })?,
                Cond::Any,
            )
            .await
            .map(|_| ())
    }
}

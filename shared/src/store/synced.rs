//! What syncs keep beyond manifests and blobs: signatures and pointers to blobs that are
//! fetched from upstream on first pull.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `signature#<digest>` | `_` | [`SignatureRecord`] |
//! | `signed#<manifest digest>` | `<signature digest>` | `{}` (the signatures of a manifest) |
//! | `lazy#<repository id>` | `<blob digest>` | [`LazyBlob`] |
//! | `sources#<repository id>` | `<remote id>` | `{}` (the remotes that synced into the repository) |
//! | `checkpoint#<task id>` | `_` | the checkpoint's length, part count and digest |
//! | `checkpoint#<task id>` | `part#<n>` | a part of the checkpoint's bytes |
//!
//! A checkpoint is opaque bytes a sync keeps for its follow-up run, in parts small enough
//! for a DynamoDB item; its parts are written before its head, and the head's digest is
//! checked on reading. It expires after [`CHECKPOINT_LIFETIME`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, encode, expiry_in, LazyBlob, SignatureRecord, Store};
use crate::domain::Digest;
use crate::ports::{Cond, Query, StoreError};

/// How long a sync checkpoint is kept for its follow-up.
pub const CHECKPOINT_LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);

/// The most remotes [`Store::sync_sources`] lists for one repository.
pub const MAX_SOURCES: usize = 32;

/// The largest part of a checkpoint (DynamoDB items are at most 400 KB).
const CHECKPOINT_PART: usize = 256 * 1024;

#[derive(Serialize, Deserialize)]
struct CheckpointHead {
    len: usize,
    parts: usize,
    digest: Digest,
}

impl Store {
    /// Records a signature and indexes it under the manifest it signs. Idempotent.
    pub async fn put_signature(&self, rec: &SignatureRecord) -> Result<(), StoreError> {
        self.t
            .put(&format!("signature#{}", rec.digest), "_", encode(rec)?, Cond::Any)
            .await?;
        self.t
            .put(
                &format!("signed#{}", rec.signed),
                rec.digest.as_str(),
                b"{}".to_vec(),
                Cond::Any,
            )
            .await
            .map(|_| ())
    }

    pub async fn signature(&self, digest: &Digest) -> Result<Option<SignatureRecord>, StoreError> {
        Ok(self
            .get_json(&format!("signature#{digest}"), "_")
            .await?
            .map(|(_, v)| v))
    }

    /// Every signature stored for `manifest`, in any repository, in digest order.
    pub async fn signatures_of(&self, manifest: &Digest) -> Result<Vec<SignatureRecord>, StoreError> {
        let mut out = Vec::new();
        for row in self.t.query(&format!("signed#{manifest}"), Query::prefix("")).await? {
            let Ok(d) = Digest::parse(&row.sk) else { continue };
            if let Some(rec) = self.signature(&d).await? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Notes that `digest`, held by the repository's versions, is fetched from `remote` when
    /// first pulled. Idempotent.
    pub async fn put_lazy_blob(&self, repo: Uuid, digest: &Digest, lazy: &LazyBlob) -> Result<(), StoreError> {
        let pk = format!("lazy#{repo}");
        if let Some(row) = self.t.get(&pk, digest.as_str()).await? {
            if decode::<LazyBlob>(&row).ok().as_ref() == Some(lazy) {
                return Ok(());
            }
        }
        self.t
            .put(&pk, digest.as_str(), encode(lazy)?, Cond::Any)
            .await
            .map(|_| ())
    }

    pub async fn lazy_blob(&self, repo: Uuid, digest: &Digest) -> Result<Option<LazyBlob>, StoreError> {
        Ok(self
            .get_json(&format!("lazy#{repo}"), digest.as_str())
            .await?
            .map(|(_, v)| v))
    }

    /// Notes that `remote` synced into the repository, so a repair knows where its content
    /// came from. Idempotent: one read once noted.
    pub async fn put_sync_source(&self, repo: Uuid, remote: Uuid) -> Result<(), StoreError> {
        let pk = format!("sources#{repo}");
        let sk = remote.to_string();
        if self.t.get(&pk, &sk).await?.is_some() {
            return Ok(());
        }
        self.t.put(&pk, &sk, b"{}".to_vec(), Cond::Any).await.map(|_| ())
    }

    /// The remotes that synced into the repository (at most [`MAX_SOURCES`]), in id order.
    pub async fn sync_sources(&self, repo: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .t
            .query(&format!("sources#{repo}"), Query::prefix("").limit(MAX_SOURCES))
            .await?;
        Ok(rows.iter().filter_map(|r| Uuid::parse_str(&r.sk).ok()).collect())
    }

    // ---- sync checkpoints ---------------------------------------------------------------------

    /// Keeps `bytes` as the task's checkpoint, replacing any earlier one.
    pub async fn put_checkpoint(&self, task: Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        let pk = format!("checkpoint#{task}");
        let expires = Some(expiry_in(CHECKPOINT_LIFETIME));
        let chunks: Vec<&[u8]> = bytes.chunks(CHECKPOINT_PART).collect();
        for (i, part) in chunks.iter().enumerate() {
            self.t
                .put_expiring(&pk, &format!("part#{i:06}"), part.to_vec(), Cond::Any, expires)
                .await?;
        }
        let head = CheckpointHead {
            len: bytes.len(),
            parts: chunks.len(),
            digest: Digest::sha256_of(bytes),
        };
        self.t
            .put_expiring(&pk, "_", encode(&head)?, Cond::Any, expires)
            .await?;
        Ok(())
    }

    /// The task's checkpoint, if it has a whole one.
    pub async fn checkpoint(&self, task: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let pk = format!("checkpoint#{task}");
        let Some(head) = self.t.get(&pk, "_").await? else {
            return Ok(None);
        };
        let head: CheckpointHead = decode(&head)?;
        let rows = self.t.query(&pk, Query::prefix("part#").limit(head.parts)).await?;
        let mut bytes = Vec::with_capacity(head.len);
        for row in rows {
            bytes.extend_from_slice(&row.value);
        }
        if bytes.len() != head.len || Digest::sha256_of(&bytes) != head.digest {
            tracing::warn!(%task, "a sync checkpoint is incomplete; ignoring it");
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Removes the task's checkpoint, if any.
    pub async fn delete_checkpoint(&self, task: Uuid) -> Result<(), StoreError> {
        let pk = format!("checkpoint#{task}");
        if self.t.get(&pk, "_").await?.is_none() {
            return Ok(());
        }
        self.t.delete(&pk, "_", Cond::Any).await?;
        for row in self.t.query(&pk, Query::prefix("part#")).await? {
            self.t.delete(&pk, &row.sk, Cond::Any).await?;
        }
        Ok(())
    }
}

//! What syncs keep beyond manifests and blobs: signatures and pointers to blobs that are
//! fetched from upstream on first pull.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `signature#<digest>` | `_` | [`SignatureRecord`] |
//! | `signed#<manifest digest>` | `<signature digest>` | `{}` (the signatures of a manifest) |
//! | `lazy#<repository id>` | `<blob digest>` | [`LazyBlob`] |

use uuid::Uuid;

use super::{decode, encode, LazyBlob, SignatureRecord, Store};
use crate::domain::Digest;
use crate::ports::{Cond, Query, StoreError};

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
}

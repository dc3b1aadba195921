//! What the registry holds, for metrics: how many units of each content type the content index
//! lists (every unit added to some version and not yet removed by orphan cleanup), and the bytes
//! of its blobs and manifests. Both come from tallies (see `tally.rs`), so reading them costs
//! one read per shard of the index whatever the registry's size.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `tally#bytes#content#<b# or m#>/<shard>` | `_` | [`Tally`](super::tally::Tally): the bytes of the units the shard lists (class `""`) |
//!
//! The bytes are a tally whose amounts are sizes: `record_content` writes a new unit's size (its
//! record's; 0 for an on-demand blob not fetched yet) into its index row and adds it to the
//! shard's bytes in the transaction that adds the row; orphan cleanup takes a row's size off in
//! the transaction that removes the row. A shard written before sizes were kept is weighed
//! once, by the first reader, from its rows' sizes or else their units' records.
//!
//! Layering: part of `store`, which knows `domain` and `ports` only.

use futures::{StreamExt, TryStreamExt};

use super::manage::IndexRow;
use super::shards;
use super::tally::{tally_pk, Counted};
use super::Store;
use crate::domain::{ContentKey, ContentType};
use crate::ports::{Row, StoreError, Write};

/// How many records the first weighing of a shard reads at once.
const WEIGH_CONCURRENCY: usize = 16;

/// The units and bytes of one content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentTotal {
    pub content_type: ContentType,
    /// Units the content index lists.
    pub units: u64,
    /// Their bytes (blobs and manifests; `None` for tags and signatures).
    pub bytes: Option<u64>,
}

/// Whether the units of a content index partition have bytes: blobs and manifests.
fn weighs(index_pk: &str) -> bool {
    [ContentType::Blob, ContentType::Manifest]
        .iter()
        .any(|ty| index_pk.starts_with(&format!("content#{}", ty.prefix())))
}

/// The partition name the bytes tally of index partition `index_pk` is kept under.
fn bytes_of(index_pk: &str) -> String {
    format!("bytes#{index_pk}")
}

impl Store {
    /// A unit's size as its record says: 0 without one (an on-demand blob not fetched yet).
    pub(super) async fn unit_size(&self, key: &ContentKey) -> Result<u64, StoreError> {
        Ok(match key {
            ContentKey::Blob(d) => self.blob(d).await?.map_or(0, |b| b.size),
            ContentKey::Manifest(d) => self.manifest(d).await?.map_or(0, |m| m.size),
            _ => 0,
        })
    }

    /// The bytes an index row stands for: the size it records, else its unit's record's.
    pub(super) async fn row_bytes(&self, sk: &str, value: &[u8]) -> Result<u64, StoreError> {
        if let Some(size) = IndexRow::size_of(value) {
            return Ok(size);
        }
        match ContentKey::decode(sk) {
            Some(key) => self.unit_size(&key).await,
            None => Ok(0),
        }
    }

    /// The write that keeps the bytes of index partition `index_pk` right in a transaction
    /// that adds (`delta` > 0) or removes its row `sk`; none for tags and signatures.
    pub(super) async fn bytes_write(&self, index_pk: &str, sk: &str, delta: i64) -> Result<Option<Write>, StoreError> {
        if !weighs(index_pk) || delta == 0 {
            return Ok(None);
        }
        let counted = [Counted::of(sk, "", delta)];
        Ok(Some(self.tally_write(&bytes_of(index_pk), &counted).await?))
    }

    /// The write that takes the bytes of row `sk` of index partition `index_pk`, at revision
    /// `rev`, off the partition's bytes, in the transaction that removes the row (none when
    /// the row changed since: that transaction fails).
    pub(super) async fn bytes_removed(&self, index_pk: &str, sk: &str, rev: u64) -> Result<Option<Write>, StoreError> {
        if !weighs(index_pk) {
            return Ok(None);
        }
        let Some(row) = self.t.get(index_pk, sk).await?.filter(|r| r.rev == rev) else {
            return Ok(None);
        };
        let n = self.row_bytes(sk, &row.value).await?;
        self.bytes_write(index_pk, sk, -i64::try_from(n).unwrap_or(i64::MAX))
            .await
    }

    /// The bytes the units of index partition `index_pk` hold (see the module's doc).
    async fn partition_bytes(&self, index_pk: &str) -> Result<u64, StoreError> {
        let tally = self
            .tally_weighed(index_pk, &tally_pk(&bytes_of(index_pk)), |rows: Vec<Row>| async move {
                futures::stream::iter(rows)
                    .map(|row| async move {
                        let n = self.row_bytes(&row.sk, &row.value).await?;
                        Ok::<_, StoreError>(Some((String::new(), n)))
                    })
                    .buffered(WEIGH_CONCURRENCY)
                    .try_collect()
                    .await
            })
            .await?;
        Ok(tally.count(""))
    }

    /// The units and bytes of every content type, from the tallies of the content index: one
    /// read per shard for the units of each type, one more per shard for the bytes of blobs
    /// and manifests (102 reads, read at once), whatever the registry's size. The first read
    /// of a shard written before its tally counts it, once.
    pub async fn content_totals(&self) -> Result<Vec<ContentTotal>, StoreError> {
        let totals = ContentType::ALL.iter().map(|ty| async move {
            let parts = shards::partitions(&format!("content#{}", ty.prefix()));
            let units = self.count_all(&parts);
            let bytes = async {
                if !weighs(&parts[0]) {
                    return Ok(None);
                }
                let each = futures::future::try_join_all(parts.iter().map(|p| self.partition_bytes(p))).await?;
                Ok::<_, StoreError>(Some(each.into_iter().sum()))
            };
            let (units, bytes) = futures::future::try_join(units, bytes).await?;
            Ok::<_, StoreError>(ContentTotal {
                content_type: *ty,
                units,
                bytes,
            })
        });
        futures::future::try_join_all(totals).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::domain::Digest;
    use crate::ports::{Cond, Table};
    use crate::store::BlobRecord;

    fn totals_of(t: &[ContentTotal], ty: ContentType) -> (u64, Option<u64>) {
        let t = t.iter().find(|t| t.content_type == ty).unwrap();
        (t.units, t.bytes)
    }

    async fn blob(store: &Store, seed: &str, size: u64) -> ContentKey {
        let digest = Digest::sha256_of(seed.as_bytes());
        store
            .put_blob(&BlobRecord {
                digest: digest.clone(),
                size,
                created: chrono::Utc::now(),
            })
            .await
            .unwrap();
        ContentKey::Blob(digest)
    }

    #[tokio::test]
    async fn units_and_bytes_follow_additions_and_removals() {
        let table = Arc::new(MemoryTable::new());
        let store = Store::new(table.clone());
        // Given a blob recorded before sizes were kept (its row holds none) and counted by
        // nobody yet
        let old = blob(&store, "old", 7).await;
        store.record_content(&old).await.unwrap();
        let pk = shards::shard("content#b#", &old.encode());
        let row = table.get(&pk, &old.encode()).await.unwrap().unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&row.value).unwrap();
        assert_eq!(v["size"], 7, "a new row records its size");
        v.as_object_mut().unwrap().remove("size");
        table
            .put(&pk, &old.encode(), serde_json::to_vec(&v).unwrap(), Cond::Any)
            .await
            .unwrap();
        table.delete(&tally_pk(&bytes_of(&pk)), "_", Cond::Any).await.unwrap();
        table.delete(&tally_pk(&pk), "_", Cond::Any).await.unwrap();
        // When the totals are first read, it is weighed by its record
        let t = store.content_totals().await.unwrap();
        assert_eq!(totals_of(&t, ContentType::Blob), (1, Some(7)));
        // and later units count at once, once each, with the size they had when added
        let new = blob(&store, "new", 100).await;
        store.record_content(&new).await.unwrap();
        store.record_content(&new).await.unwrap();
        let lazy = ContentKey::Blob(Digest::sha256_of(b"on demand"));
        store.record_content(&lazy).await.unwrap();
        let t = store.content_totals().await.unwrap();
        assert_eq!(totals_of(&t, ContentType::Blob), (3, Some(107)));
        assert_eq!(totals_of(&t, ContentType::Tag), (0, None));
        // Then orphan cleanup's removal takes its size off
        let candidates = store.orphan_candidates().await.unwrap();
        let c = candidates.iter().find(|c| c.key == new).unwrap();
        assert!(store.forget_candidate(c).await.unwrap());
        let t = store.content_totals().await.unwrap();
        assert_eq!(totals_of(&t, ContentType::Blob), (2, Some(7)));
    }
}

//! In-memory adapters: a `BTreeMap` table and a `HashMap` blob store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::Digest;
use crate::ports::collect;
use crate::ports::{
    check_cond, check_transact, expired, next_rev, query_matches, unix_now, BlobReader, BlobStore, ByteRange,
    ByteStream, Cond, Query, Row, StoreError, Table, Write, WriteOp,
};

fn poisoned() -> StoreError {
    StoreError::other_msg("memory adapter lock poisoned")
}

/// `(pk, sk)` → `(revision, value, expiry)`.
type Items = BTreeMap<(String, String), (u64, Vec<u8>, Option<u64>)>;

/// The table port in memory. Expired items stay in the map (with their revision) until they
/// are written again; reads skip them.
#[derive(Default)]
pub struct MemoryTable {
    items: Mutex<Items>,
}

impl MemoryTable {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The item's revision, and whether it is live at `now`.
fn current(items: &Items, key: &(String, String), now: u64) -> (Option<u64>, Option<u64>) {
    match items.get(key) {
        None => (None, None),
        Some((rev, _, exp)) if expired(*exp, now) => (Some(*rev), None),
        Some((rev, _, _)) => (Some(*rev), Some(*rev)),
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError> {
        let items = self.items.lock().map_err(|_| poisoned())?;
        let now = unix_now();
        Ok(items
            .get(&(pk.to_owned(), sk.to_owned()))
            .filter(|(_, _, exp)| !expired(*exp, now))
            .map(|(rev, v, _)| Row {
                sk: sk.to_owned(),
                rev: *rev,
                value: v.clone(),
            }))
    }

    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut items = self.items.lock().map_err(|_| poisoned())?;
        let key = (pk.to_owned(), sk.to_owned());
        let (stored, live) = current(&items, &key, unix_now());
        check_cond(cond, live)?;
        let rev = next_rev(stored);
        items.insert(key, (rev, value, expires_at));
        Ok(rev)
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError> {
        let mut items = self.items.lock().map_err(|_| poisoned())?;
        let key = (pk.to_owned(), sk.to_owned());
        let (_, live) = current(&items, &key, unix_now());
        check_cond(cond, live)?;
        if cond != Cond::Absent {
            items.remove(&key);
        }
        Ok(())
    }

    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError> {
        let items = self.items.lock().map_err(|_| poisoned())?;
        let now = unix_now();
        // only the range asked for, and only up to the limit: a page costs what it holds
        let ours = |(p, sk): &(String, String)| p == pk && sk.starts_with(&q.prefix);
        let lo = match (&q.after, q.reverse) {
            (Some(a), false) if *a >= q.prefix => Bound::Excluded((pk.to_owned(), a.clone())),
            _ => Bound::Included((pk.to_owned(), q.prefix.clone())),
        };
        let hi = match (&q.after, q.reverse) {
            (Some(a), true) => Bound::Excluded((pk.to_owned(), a.clone())),
            _ => Bound::Excluded((format!("{pk}\0"), String::new())),
        };
        let range = items.range((lo, hi));
        let live = |(k, (_, _, exp)): &(&(String, String), &(u64, Vec<u8>, Option<u64>))| {
            query_matches(&q, &k.1) && !expired(*exp, now)
        };
        let row = |(k, (rev, v, _)): (&(String, String), &(u64, Vec<u8>, Option<u64>))| Row {
            sk: k.1.clone(),
            rev: *rev,
            value: v.clone(),
        };
        let limit = q.limit.unwrap_or(usize::MAX);
        let rows: Vec<Row> = if q.reverse {
            range
                .rev()
                .skip_while(|(k, _)| !ours(k))
                .take_while(|(k, _)| ours(k))
                .filter(live)
                .take(limit)
                .map(row)
                .collect()
        } else {
            range
                .take_while(|(k, _)| ours(k))
                .filter(live)
                .take(limit)
                .map(row)
                .collect()
        };
        Ok(rows)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transact(&writes)?;
        let mut items = self.items.lock().map_err(|_| poisoned())?;
        let now = unix_now();
        for w in &writes {
            let (_, live) = current(&items, &(w.pk.clone(), w.sk.clone()), now);
            check_cond(w.cond, live)?;
        }
        for w in writes {
            let key = (w.pk, w.sk);
            match w.op {
                WriteOp::Put(value) => {
                    let rev = next_rev(items.get(&key).map(|(r, _, _)| *r));
                    items.insert(key, (rev, value, None));
                }
                WriteOp::Delete if w.cond == Cond::Absent => {}
                WriteOp::Delete => {
                    items.remove(&key);
                }
            }
        }
        Ok(())
    }
}

/// The blob store port in memory.
#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<Digest, Bytes>>,
    uploads: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryBlobStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn one_shot(bytes: Bytes) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let blobs = self.blobs.lock().map_err(|_| poisoned())?;
        Ok(blobs.get(digest).map(|b| b.len() as u64))
    }

    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader, StoreError> {
        let bytes = {
            let blobs = self.blobs.lock().map_err(|_| poisoned())?;
            blobs.get(digest).cloned().ok_or(StoreError::NotFound)?
        };
        let size = bytes.len() as u64;
        let body = match range {
            Some(r) if r.end < size => bytes.slice(r.start as usize..=r.end as usize),
            Some(_) => return Err(StoreError::other_msg("range beyond the blob")),
            None => bytes,
        };
        Ok(BlobReader {
            size,
            range,
            body: one_shot(body),
        })
    }

    async fn put(&self, digest: &Digest, body: ByteStream) -> Result<u64, StoreError> {
        let bytes = collect(body).await?;
        let actual = digest.recompute(&bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let size = bytes.len() as u64;
        self.blobs
            .lock()
            .map_err(|_| poisoned())?
            .insert(digest.clone(), Bytes::from(bytes));
        Ok(size)
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        self.blobs.lock().map_err(|_| poisoned())?.remove(digest);
        Ok(())
    }

    async fn redirect_url(&self, _: &Digest, _: Duration) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn upload_create(&self, id: &str) -> Result<(), StoreError> {
        self.uploads
            .lock()
            .map_err(|_| poisoned())?
            .insert(id.to_owned(), Vec::new());
        Ok(())
    }

    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, StoreError> {
        {
            let uploads = self.uploads.lock().map_err(|_| poisoned())?;
            let cur = uploads.get(id).ok_or(StoreError::NotFound)?;
            if cur.len() as u64 != offset {
                return Err(StoreError::OutOfOrder { size: cur.len() as u64 });
            }
        }
        let bytes = collect(body).await?;
        let mut uploads = self.uploads.lock().map_err(|_| poisoned())?;
        let cur = uploads.get_mut(id).ok_or(StoreError::NotFound)?;
        if cur.len() as u64 != offset {
            return Err(StoreError::OutOfOrder { size: cur.len() as u64 });
        }
        cur.extend_from_slice(&bytes);
        Ok(cur.len() as u64)
    }

    async fn upload_size(&self, id: &str) -> Result<u64, StoreError> {
        let uploads = self.uploads.lock().map_err(|_| poisoned())?;
        uploads.get(id).map(|b| b.len() as u64).ok_or(StoreError::NotFound)
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        let bytes = self
            .uploads
            .lock()
            .map_err(|_| poisoned())?
            .remove(id)
            .ok_or(StoreError::NotFound)?;
        self.put(digest, one_shot(Bytes::from(bytes))).await
    }

    async fn upload_abort(&self, id: &str) -> Result<(), StoreError> {
        self.uploads.lock().map_err(|_| poisoned())?.remove(id);
        Ok(())
    }
}

//! The table port on redb: one redb table keyed by `(pk, sk)`, each value prefixed with its
//! 8-byte revision. Writes run in their own transaction on the blocking pool; redb serializes
//! writers, which makes each conditional write atomic. Reads use MVCC snapshots.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use crate::ports::{query_matches, Cond, Query, Row, StoreError, Table};

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");

/// The embedded metadata table.
#[derive(Clone)]
pub struct RedbTable {
    db: Arc<Database>,
}

fn err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::other(e)
}

fn split(raw: &[u8]) -> Result<(u64, Vec<u8>), StoreError> {
    if raw.len() < 8 {
        return Err(StoreError::other_msg("corrupt item: shorter than its revision"));
    }
    let mut rev = [0u8; 8];
    rev.copy_from_slice(&raw[..8]);
    Ok((u64::from_le_bytes(rev), raw[8..].to_vec()))
}

fn check(cond: Cond, current: Option<u64>) -> Result<(), StoreError> {
    match (cond, current) {
        (Cond::Any, _) | (Cond::Absent, None) => Ok(()),
        (Cond::Absent, Some(_)) => Err(StoreError::Conflict("item exists".into())),
        (Cond::Rev(w), Some(h)) if w == h => Ok(()),
        (Cond::Rev(w), h) => Err(StoreError::Conflict(format!("expected revision {w}, found {h:?}"))),
    }
}

impl RedbTable {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(ITEMS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbTable { db: Arc::new(db) })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::other_msg(format!("blocking task failed: {e}")))?
    }
}

#[async_trait]
impl Table for RedbTable {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(ITEMS).map_err(err)?;
        match t.get((pk, sk)).map_err(err)? {
            None => Ok(None),
            Some(v) => {
                let (rev, value) = split(v.value())?;
                Ok(Some(Row {
                    sk: sk.to_owned(),
                    rev,
                    value,
                }))
            }
        }
    }

    async fn put(&self, pk: &str, sk: &str, value: Vec<u8>, cond: Cond) -> Result<u64, StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.write(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let rev = {
                let mut t = tx.open_table(ITEMS).map_err(err)?;
                let current = match t.get((pk.as_str(), sk.as_str())).map_err(err)? {
                    Some(v) => Some(split(v.value())?.0),
                    None => None,
                };
                check(cond, current)?;
                let rev = current.unwrap_or(0) + 1;
                let mut buf = Vec::with_capacity(8 + value.len());
                buf.extend_from_slice(&rev.to_le_bytes());
                buf.extend_from_slice(&value);
                t.insert((pk.as_str(), sk.as_str()), buf.as_slice()).map_err(err)?;
                rev
            };
            tx.commit().map_err(err)?;
            Ok(rev)
        })
        .await
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.write(move |db| {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut t = tx.open_table(ITEMS).map_err(err)?;
                let current = match t.get((pk.as_str(), sk.as_str())).map_err(err)? {
                    Some(v) => Some(split(v.value())?.0),
                    None => None,
                };
                check(cond, current)?;
                if cond == Cond::Absent {
                    return Ok(());
                }
                t.remove((pk.as_str(), sk.as_str())).map_err(err)?;
            }
            tx.commit().map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(ITEMS).map_err(err)?;
        let upper = format!("{}\u{10FFFF}", q.prefix);
        let (lo, hi): (&str, &str) = match (&q.after, q.reverse) {
            (Some(a), false) if a.as_str() > q.prefix.as_str() => (a.as_str(), upper.as_str()),
            (Some(a), true) if a.as_str() < upper.as_str() => (q.prefix.as_str(), a.as_str()),
            _ => (q.prefix.as_str(), upper.as_str()),
        };
        let range = t.range((pk, lo)..=(pk, hi)).map_err(err)?;
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        let mut push = |k: redb::AccessGuard<(&str, &str)>, v: redb::AccessGuard<&[u8]>| -> Result<bool, StoreError> {
            let sk = k.value().1;
            if query_matches(&q, sk) {
                let (rev, value) = split(v.value())?;
                rows.push(Row {
                    sk: sk.to_owned(),
                    rev,
                    value,
                });
            }
            Ok(rows.len() < limit)
        };
        if q.reverse {
            for item in range.rev() {
                let (k, v) = item.map_err(err)?;
                if !push(k, v)? {
                    break;
                }
            }
        } else {
            for item in range {
                let (k, v) = item.map_err(err)?;
                if !push(k, v)? {
                    break;
                }
            }
        }
        Ok(rows)
    }
}

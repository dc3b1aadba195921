//! The table port on redb: one redb table keyed by `(pk, sk)`, each value prefixed with its
//! 8-byte revision. Writes run in their own transaction on the blocking pool; redb serializes
//! writers, which makes each conditional write atomic. Reads use MVCC snapshots.
//!
//! An expiring item has the top bit of its revision word set and its expiry (8 bytes, Unix
//! seconds) after it, and an entry in the `expiry` index, which [`RedbTable::sweep_expired`]
//! walks to remove what has expired. Reads skip expired items before the sweep gets to them.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use crate::ports::{check_cond, expired, query_matches, unix_now, Cond, Query, Row, StoreError, Table};

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
/// `(expires_at, pk, sk)` of every expiring item.
const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");

/// Set in the revision word of an item that carries an expiry.
const EXPIRES: u64 = 1 << 63;

/// The embedded metadata table.
#[derive(Clone)]
pub struct RedbTable {
    db: Arc<Database>,
}

fn err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::other(e)
}

fn word(raw: &[u8], at: usize) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = raw
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::other_msg("corrupt item: shorter than its header"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// An item's revision, expiry and the offset of its value.
fn header(raw: &[u8]) -> Result<(u64, Option<u64>, usize), StoreError> {
    let w = word(raw, 0)?;
    if w & EXPIRES == 0 {
        Ok((w, None, 8))
    } else {
        Ok((w & !EXPIRES, Some(word(raw, 8)?), 16))
    }
}

/// The item as a row, or `None` when it has expired at `now`.
fn live_row(sk: &str, raw: &[u8], now: u64) -> Result<Option<Row>, StoreError> {
    let (rev, exp, at) = header(raw)?;
    Ok((!expired(exp, now)).then(|| Row {
        sk: sk.to_owned(),
        rev,
        value: raw[at..].to_vec(),
    }))
}

fn encode(rev: u64, expires_at: Option<u64>, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + value.len());
    match expires_at {
        None => buf.extend_from_slice(&rev.to_le_bytes()),
        Some(at) => {
            buf.extend_from_slice(&(rev | EXPIRES).to_le_bytes());
            buf.extend_from_slice(&at.to_le_bytes());
        }
    }
    buf.extend_from_slice(value);
    buf
}

type Items<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;

/// A stored item's revision and expiry.
type Stored = Option<(u64, Option<u64>)>;

/// The stored item's revision and expiry, and its revision if it is live at `now`.
fn current(t: &Items, pk: &str, sk: &str, now: u64) -> Result<(Stored, Option<u64>), StoreError> {
    let Some(v) = t.get((pk, sk)).map_err(err)? else {
        return Ok((None, None));
    };
    let (rev, exp, _) = header(v.value())?;
    Ok((Some((rev, exp)), (!expired(exp, now)).then_some(rev)))
}

impl RedbTable {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(ITEMS).map_err(err)?;
        tx.open_table(EXPIRY).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbTable { db: Arc::new(db) })
    }

    /// Removes the items that have expired; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        self.write(|db| {
            let now = unix_now();
            let tx = db.begin_write().map_err(err)?;
            let n = {
                let mut items = tx.open_table(ITEMS).map_err(err)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let due: Vec<(u64, String, String)> = expiry
                    .range((0, "", "")..=(now, "\u{10FFFF}", "\u{10FFFF}"))
                    .map_err(err)?
                    .map(|e| {
                        e.map(|(k, _)| {
                            let (at, pk, sk) = k.value();
                            (at, pk.to_owned(), sk.to_owned())
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                for (at, pk, sk) in &due {
                    expiry.remove((*at, pk.as_str(), sk.as_str())).map_err(err)?;
                    if let (Some((_, Some(exp))), None) = current(&items, pk, sk, now)? {
                        if exp == *at {
                            items.remove((pk.as_str(), sk.as_str())).map_err(err)?;
                        }
                    }
                }
                due.len()
            };
            tx.commit().map_err(err)?;
            Ok(n)
        })
        .await
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
            Some(v) => live_row(sk, v.value(), unix_now()),
        }
    }

    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.write(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let rev = {
                let mut t = tx.open_table(ITEMS).map_err(err)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let (stored, live) = current(&t, &pk, &sk, unix_now())?;
                check_cond(cond, live)?;
                if let Some((_, Some(old))) = stored {
                    expiry.remove((old, pk.as_str(), sk.as_str())).map_err(err)?;
                }
                if let Some(at) = expires_at {
                    expiry.insert((at, pk.as_str(), sk.as_str()), ()).map_err(err)?;
                }
                let rev = stored.map_or(0, |(r, _)| r) + 1;
                t.insert((pk.as_str(), sk.as_str()), encode(rev, expires_at, &value).as_slice())
                    .map_err(err)?;
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
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let (stored, live) = current(&t, &pk, &sk, unix_now())?;
                check_cond(cond, live)?;
                if cond == Cond::Absent {
                    return Ok(());
                }
                if let Some((_, Some(old))) = stored {
                    expiry.remove((old, pk.as_str(), sk.as_str())).map_err(err)?;
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
        let now = unix_now();
        let mut rows = Vec::new();
        let mut push = |k: redb::AccessGuard<(&str, &str)>, v: redb::AccessGuard<&[u8]>| -> Result<bool, StoreError> {
            let sk = k.value().1;
            if query_matches(&q, sk) {
                rows.extend(live_row(sk, v.value(), now)?);
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

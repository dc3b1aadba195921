use async_trait::async_trait;

use super::StoreError;

/// The current time in Unix seconds, the clock item expiry is measured against.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether an item written with `expires_at` has expired at `now` (Unix seconds).
pub fn expired(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// One item: its sort key, revision and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub sk: String,
    /// Grows by one with each write of the item. A new item starts at a random revision
    /// ([`first_rev`]), so an item deleted and written again does not take up a revision it
    /// had before and a condition on the old one fails (no ABA).
    pub rev: u64,
    pub value: Vec<u8>,
}

/// The revision of an item's first write: random in `1..=2^48`, so a condition taken on an
/// item that was then deleted and made again fails (but for a chance of 1 in 2^48).
pub fn first_rev() -> u64 {
    1 + rand::random::<u64>() % (1 << 48)
}

/// The revision of a write of an item stored at `stored` (`None` when there is none).
pub fn next_rev(stored: Option<u64>) -> u64 {
    stored.map_or_else(first_rev, |r| r + 1)
}

/// The condition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Write whatever is there.
    Any,
    /// Only if the item does not exist.
    Absent,
    /// Only if the item exists at exactly this revision.
    Rev(u64),
}

/// What one write of a transaction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Writes the value (no expiry).
    Put(Vec<u8>),
    /// Deletes the item.
    Delete,
}

/// One write of a [`Table::transact`] call: `op` on `(pk, sk)` if `cond` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub pk: String,
    pub sk: String,
    pub cond: Cond,
    pub op: WriteOp,
}

impl Write {
    pub fn put(pk: impl Into<String>, sk: impl Into<String>, value: Vec<u8>, cond: Cond) -> Self {
        Write {
            pk: pk.into(),
            sk: sk.into(),
            cond,
            op: WriteOp::Put(value),
        }
    }

    pub fn delete(pk: impl Into<String>, sk: impl Into<String>, cond: Cond) -> Self {
        Write {
            pk: pk.into(),
            sk: sk.into(),
            cond,
            op: WriteOp::Delete,
        }
    }
}

/// The most writes one [`Table::transact`] call takes (DynamoDB allows 100; Berth's
/// transactions are names and their items, a handful at most).
pub const MAX_TRANSACT: usize = 25;

/// A range of one partition: items whose sort key starts with `prefix` and, when `after` is
/// set, sorts strictly after it (strictly before it when `reverse`), in sort-key order
/// (descending when `reverse`), at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub prefix: String,
    pub after: Option<String>,
    pub limit: Option<usize>,
    pub reverse: bool,
}

impl Query {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Query {
            prefix: prefix.into(),
            ..Default::default()
        }
    }
    pub fn after(mut self, after: Option<String>) -> Self {
        self.after = after;
        self
    }
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }
}

/// An ordered table of items addressed by `(pk, sk)`: the shape of a DynamoDB table, a redb
/// table with a tuple key, or a BTreeMap.
///
/// Contract (checked by the table port suite):
/// - Each call is atomic on its one item, except [`Table::transact`], which is atomic on the
///   few items it names. Conditional writes are the only concurrency control: a failed
///   condition is `StoreError::Conflict` and changes nothing.
/// - A successful write is visible to every later read (read-after-write). It is durable once
///   a [`Table::flush`] called after it has returned (on adapters that make each write durable
///   before it returns, at once); see [`crate::ports::durability`].
/// - Queries touch one partition and return items in sort-key byte order.
/// - An item written with an expiry is gone once that second has passed: reads skip it,
///   `Cond::Absent` holds and `Cond::Rev` fails, whether or not the adapter has removed it
///   yet (DynamoDB's TTL removes items up to days late; the embedded table sweeps).
///   Revisions keep growing across an expired item that is written again.
#[async_trait]
pub trait Table: Send + Sync + 'static {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError>;

    /// Writes the item if `cond` holds; returns its new revision. The item does not expire
    /// (an expiry an earlier write set is cleared).
    async fn put(&self, pk: &str, sk: &str, value: Vec<u8>, cond: Cond) -> Result<u64, StoreError> {
        self.put_expiring(pk, sk, value, cond, None).await
    }

    /// Writes the item if `cond` holds, to expire at `expires_at` (Unix seconds) when set;
    /// returns its new revision.
    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Deletes the item if `cond` holds. Deleting a missing item under `Cond::Any` is fine.
    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError>;

    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError>;

    /// Applies every write or none (at most [`MAX_TRANSACT`], each `(pk, sk)` at most once):
    /// when any condition fails, `Conflict` and nothing changes. Readers see all of the writes
    /// or none of them. Puts clear an expiry. `Delete` under `Cond::Absent` only checks that
    /// the item does not exist. This is how a name and the item it names are made, renamed
    /// and removed together (DESIGN invariant 6), so no state exists in which one is there
    /// without the other.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// Makes every write that returned before this call durable, and fails when a write of the
    /// current write scope was lost ([`crate::ports::durability`]). What a client is told
    /// about writes waits for this. Adapters whose writes are durable as they return (DynamoDB,
    /// the in-memory table) have nothing to do.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Checks a transaction's shape: not empty, not too long, no item twice.
pub fn check_transact(writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACT {
        return Err(StoreError::other_msg(format!(
            "a transaction takes 1 to {MAX_TRANSACT} writes, not {}",
            writes.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for w in writes {
        if !seen.insert((w.pk.as_str(), w.sk.as_str())) {
            return Err(StoreError::other_msg(format!(
                "a transaction writes ({}, {}) twice",
                w.pk, w.sk
            )));
        }
    }
    Ok(())
}

/// Checks `cond` against the revision of the live item (`None` when there is none or it has
/// expired): `Conflict` when it does not hold. Adapters that check conditions themselves share it.
pub fn check_cond(cond: Cond, current: Option<u64>) -> Result<(), StoreError> {
    match (cond, current) {
        (Cond::Any, _) | (Cond::Absent, None) => Ok(()),
        (Cond::Absent, Some(_)) => Err(StoreError::Conflict("item exists".into())),
        (Cond::Rev(want), Some(have)) if want == have => Ok(()),
        (Cond::Rev(want), have) => Err(StoreError::Conflict(format!(
            "expected revision {want}, found {have:?}"
        ))),
    }
}

/// Whether `sk` falls inside the query's range, ignoring the limit. Adapters share it.
pub fn query_matches(q: &Query, sk: &str) -> bool {
    sk.starts_with(&q.prefix)
        && match &q.after {
            None => true,
            Some(a) if q.reverse => sk < a.as_str(),
            Some(a) => sk > a.as_str(),
        }
}

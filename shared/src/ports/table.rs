use async_trait::async_trait;

use super::StoreError;

/// One item: its sort key, revision and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub sk: String,
    /// Starts at 1 and grows by one with each write of the item.
    pub rev: u64,
    pub value: Vec<u8>,
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
/// - Each call is atomic on its one item; nothing spans items. Conditional writes are the only
///   concurrency control: a failed condition is `StoreError::Conflict` and changes nothing.
/// - A successful write is visible to every later read (read-after-write).
/// - Queries touch one partition and return items in sort-key byte order.
#[async_trait]
pub trait Table: Send + Sync + 'static {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError>;

    /// Writes the item if `cond` holds; returns its new revision.
    async fn put(&self, pk: &str, sk: &str, value: Vec<u8>, cond: Cond) -> Result<u64, StoreError>;

    /// Deletes the item if `cond` holds. Deleting a missing item under `Cond::Any` is fine.
    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError>;

    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError>;
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

//! The table port on one DynamoDB table.
//!
//! Items: key `pk` (S, hash) and `sk` (S, range); `rev` (N) counts the item's writes and `v`
//! (B) holds the value. Every write is one `UpdateItem` or `DeleteItem` whose condition
//! expression carries the port's [`Cond`], so DynamoDB makes each conditional write atomic;
//! reads are strongly consistent, which gives the port's read-after-write. An expiring item
//! carries its expiry in `ttl` (N, Unix seconds), the table's TTL attribute: DynamoDB deletes
//! such items by itself, up to days late, so reads skip them and conditions treat them as
//! absent until then.
//!
//! Layering: implements `ports::Table`; knows nothing of the data model written over it.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::aws::{is_not_found, store_error};
use crate::ports::{
    check_transact, expired, first_rev, query_matches, unix_now, Cond, Query, Row, StoreError, Table, Write, WriteOp,
};

type Item = HashMap<String, AttributeValue>;

/// The largest page DynamoDB is asked for (it also stops a page at 1 MB).
const MAX_PAGE: usize = 1000;

/// The highest character, for the upper bound of a prefix range.
const TOP: char = '\u{10FFFF}';

/// The table port on DynamoDB.
#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn corrupt(what: &str) -> StoreError {
    StoreError::other_msg(format!("corrupt DynamoDB item: {what}"))
}

fn rev_of(item: &Item) -> Result<u64, StoreError> {
    match item.get("rev") {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| corrupt("rev is not a whole number")),
        _ => Err(corrupt("no rev")),
    }
}

fn expiry_of(item: &Item) -> Result<Option<u64>, StoreError> {
    match item.get("ttl") {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| corrupt("ttl is not a whole number")),
        Some(_) => Err(corrupt("ttl is not a number")),
    }
}

/// The item as a row, or `None` when it has expired at `now`.
fn row_of(mut item: Item, now: u64) -> Result<Option<Row>, StoreError> {
    if expired(expiry_of(&item)?, now) {
        return Ok(None);
    }
    let rev = rev_of(&item)?;
    let sk = match item.remove("sk") {
        Some(AttributeValue::S(s)) => s,
        _ => return Err(corrupt("no sk")),
    };
    let value = match item.remove("v") {
        Some(AttributeValue::B(b)) => b.into_inner(),
        _ => return Err(corrupt("no value")),
    };
    Ok(Some(Row { sk, rev, value }))
}

/// A condition expression with the attribute names and values it uses.
struct Condition {
    expr: &'static str,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

/// The condition of a write under `cond` at `now`. An expired item counts as absent.
fn condition(cond: Cond, now: u64) -> Option<Condition> {
    let now = (":now", AttributeValue::N(now.to_string()));
    match cond {
        Cond::Any => None,
        Cond::Absent => Some(Condition {
            expr: "attribute_not_exists(pk) OR #ttl <= :now",
            names: vec![("#ttl", "ttl")],
            values: vec![now],
        }),
        Cond::Rev(n) => Some(Condition {
            expr: "#rev = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)",
            names: vec![("#rev", "rev"), ("#ttl", "ttl")],
            values: vec![(":expected", AttributeValue::N(n.to_string())), now],
        }),
    }
}

/// How often a transaction that collided with another one in flight is tried again before
/// it counts as throttled.
const TRANSACT_TRIES: u32 = 8;

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::other(e)
}

/// One write of a transaction as a `TransactWriteItems` entry.
fn transact_item(table: &str, w: &Write, now: u64) -> Result<TransactWriteItem, StoreError> {
    let cond = condition(w.cond, now);
    let names = |mut m: HashMap<String, String>| {
        for (n, a) in cond.iter().flat_map(|c| c.names.iter()) {
            m.insert((*n).to_owned(), (*a).to_owned());
        }
        (!m.is_empty()).then_some(m)
    };
    let values = |mut m: Item| {
        for (n, v) in cond.iter().flat_map(|c| c.values.iter()) {
            m.insert((*n).to_owned(), v.clone());
        }
        (!m.is_empty()).then_some(m)
    };
    let expr = cond.as_ref().map(|c| c.expr.to_owned());
    Ok(match (&w.op, w.cond) {
        (WriteOp::Delete, Cond::Absent) => TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(key(&w.pk, &w.sk)))
                    .set_condition_expression(expr)
                    .set_expression_attribute_names(names(HashMap::new()))
                    .set_expression_attribute_values(values(HashMap::new()))
                    .build()
                    .map_err(build_error)?,
            )
            .build(),
        (WriteOp::Delete, _) => TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(table)
                    .set_key(Some(key(&w.pk, &w.sk)))
                    .set_condition_expression(expr)
                    .set_expression_attribute_names(names(HashMap::new()))
                    .set_expression_attribute_values(values(HashMap::new()))
                    .build()
                    .map_err(build_error)?,
            )
            .build(),
        (WriteOp::Put(value), _) => TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(table)
                    .set_key(Some(key(&w.pk, &w.sk)))
                    .update_expression("SET #v = :v, #rev = if_not_exists(#rev, :start) + :one REMOVE #ttl")
                    .set_condition_expression(expr)
                    .set_expression_attribute_names(names(HashMap::from([
                        ("#v".to_owned(), "v".to_owned()),
                        ("#rev".to_owned(), "rev".to_owned()),
                        ("#ttl".to_owned(), "ttl".to_owned()),
                    ])))
                    .set_expression_attribute_values(values(HashMap::from([
                        (":v".to_owned(), AttributeValue::B(Blob::new(value.clone()))),
                        (":start".to_owned(), AttributeValue::N((first_rev() - 1).to_string())),
                        (":one".to_owned(), AttributeValue::N("1".into())),
                    ])))
                    .build()
                    .map_err(build_error)?,
            )
            .build(),
    })
}

/// The inclusive sort-key bounds a query reads (`None` for an open end), or `None` when the
/// range is empty. `after` itself falls inside and is dropped from the results.
fn bounds(q: &Query) -> Option<(Option<String>, Option<String>)> {
    let prefix = (!q.prefix.is_empty()).then(|| q.prefix.clone());
    let upper = prefix.as_ref().map(|p| format!("{p}{TOP}"));
    let (lo, hi) = match (&q.after, q.reverse) {
        (None, _) => (prefix, upper),
        (Some(a), false) => (Some(prefix.map_or(a.clone(), |p| p.max(a.clone()))), upper),
        (Some(a), true) => (prefix, Some(upper.map_or(a.clone(), |u| u.min(a.clone())))),
    };
    match (&lo, &hi) {
        (Some(l), Some(h)) if l > h => None,
        _ => Some((lo, hi)),
    }
}

impl DynamoTable {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoTable {
            client,
            table: table.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the table when it does not exist (on-demand billing), waits until it is active,
    /// then turns on point-in-time recovery and the `ttl` attribute (best effort: a failure is
    /// logged, as emulators lack some of it). Returns whether it created the table.
    pub async fn create_if_missing(&self) -> Result<bool, StoreError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(store_error(e)),
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(StoreError::other)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(StoreError::other)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // created meanwhile by someone else
            Err(e) if super::aws::code(&e) == Some("ResourceInUseException") => {}
            Err(e) => return Err(store_error(e)),
        }
        self.wait_active().await?;
        tracing::info!(table = %self.table, "created the DynamoDB table");

        let pitr = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(StoreError::other)?;
        if let Err(e) = self
            .client
            .update_continuous_backups()
            .table_name(&self.table)
            .point_in_time_recovery_specification(pitr)
            .send()
            .await
        {
            tracing::warn!(table = %self.table, error = ?e, "could not turn on point-in-time recovery");
        }
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("ttl")
            .build()
            .map_err(StoreError::other)?;
        if let Err(e) = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
        {
            tracing::warn!(table = %self.table, error = ?e, "could not turn on the ttl attribute");
        }
        Ok(true)
    }

    async fn wait_active(&self) -> Result<(), StoreError> {
        for _ in 0..120 {
            let d = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(store_error)?;
            if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::other_msg(format!(
            "table {} did not become active in 60 s",
            self.table
        )))
    }

    /// Deletes the table (tests clean up with it).
    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        match out.item {
            Some(item) => row_of(item, unix_now()),
            None => Ok(None),
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
        let update = match expires_at {
            Some(_) => "SET #v = :v, #rev = if_not_exists(#rev, :start) + :one, #ttl = :ttl",
            None => "SET #v = :v, #rev = if_not_exists(#rev, :start) + :one REMOVE #ttl",
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(update)
            .expression_attribute_names("#v", "v")
            .expression_attribute_names("#rev", "rev")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":v", AttributeValue::B(Blob::new(value)))
            .expression_attribute_values(":start", AttributeValue::N((first_rev() - 1).to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew);
        if let Some(at) = expires_at {
            req = req.expression_attribute_values(":ttl", AttributeValue::N(at.to_string()));
        }
        if let Some(c) = condition(cond, unix_now()) {
            req = req.condition_expression(c.expr);
            for (n, a) in c.names {
                req = req.expression_attribute_names(n, a);
            }
            for (n, v) in c.values {
                req = req.expression_attribute_values(n, v);
            }
        }
        let out = req.send().await.map_err(store_error)?;
        rev_of(out.attributes().unwrap_or(&HashMap::new()))
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError> {
        if cond == Cond::Absent {
            // a delete of an item that must not exist deletes nothing: only check
            return match self.get(pk, sk).await? {
                Some(_) => Err(StoreError::Conflict("item exists".into())),
                None => Ok(()),
            };
        }
        let mut req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)));
        if let Some(c) = condition(cond, unix_now()) {
            req = req.condition_expression(c.expr);
            for (n, a) in c.names {
                req = req.expression_attribute_names(n, a);
            }
            for (n, v) in c.values {
                req = req.expression_attribute_values(n, v);
            }
        }
        req.send().await.map_err(store_error)?;
        Ok(())
    }

    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError> {
        let limit = q.limit.unwrap_or(usize::MAX);
        let Some((lo, hi)) = bounds(&q) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cond = "pk = :pk".to_owned();
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(pk.to_owned()))]);
        match (&q.after, lo, hi) {
            (None, Some(prefix), _) => {
                cond.push_str(" AND begins_with(sk, :p)");
                values.insert(":p".into(), AttributeValue::S(prefix));
            }
            (_, None, None) => {}
            (_, Some(lo), None) => {
                cond.push_str(" AND sk >= :lo");
                values.insert(":lo".into(), AttributeValue::S(lo));
            }
            (_, None, Some(hi)) => {
                cond.push_str(" AND sk <= :hi");
                values.insert(":hi".into(), AttributeValue::S(hi));
            }
            (_, Some(lo), Some(hi)) => {
                cond.push_str(" AND sk BETWEEN :lo AND :hi");
                values.insert(":lo".into(), AttributeValue::S(lo));
                values.insert(":hi".into(), AttributeValue::S(hi));
            }
        }
        let mut rows = Vec::new();
        let mut start: Option<Item> = None;
        let now = unix_now();
        loop {
            // one more than wanted: `after` itself may come back and is dropped
            let page = limit.saturating_sub(rows.len()).saturating_add(1).min(MAX_PAGE);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&cond)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(!q.reverse)
                .consistent_read(true)
                .limit(page as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items.unwrap_or_default() {
                let Some(row) = row_of(item, now)? else { continue };
                if query_matches(&q, &row.sk) {
                    rows.push(row);
                    if rows.len() >= limit {
                        return Ok(rows);
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(rows),
            }
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transact(&writes)?;
        let mut backoff = Duration::from_millis(10);
        for attempt in 1..=TRANSACT_TRIES {
            let now = unix_now();
            let items = writes
                .iter()
                .map(|w| transact_item(&self.table, w, now))
                .collect::<Result<Vec<_>, _>>()?;
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Vec<String> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .filter_map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(store_error(err)),
            };
            if reasons.iter().any(|r| r == "ConditionalCheckFailed") {
                return Err(StoreError::Conflict(
                    "a condition of the transaction did not hold".into(),
                ));
            }
            // another transaction on one of the items was in flight: try again shortly
            let retryable = reasons
                .iter()
                .all(|r| matches!(r.as_str(), "None" | "TransactionConflict" | "ThrottlingError"));
            if !retryable || attempt == TRANSACT_TRIES {
                return Err(StoreError::Throttled(Box::new(err)));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(400));
        }
        Err(StoreError::other_msg("transaction retries exhausted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(prefix: &str, after: Option<&str>, reverse: bool) -> Query {
        Query {
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit: None,
            reverse,
        }
    }

    #[test]
    fn query_bounds() {
        let top = |p: &str| Some(format!("{p}{TOP}"));
        assert_eq!(bounds(&q("t#", None, false)), Some((Some("t#".into()), top("t#"))));
        assert_eq!(bounds(&q("", None, true)), Some((None, None)));
        assert_eq!(
            bounds(&q("t#", Some("t#b"), false)),
            Some((Some("t#b".into()), top("t#")))
        );
        assert_eq!(
            bounds(&q("t#", Some("t#b"), true)),
            Some((Some("t#".into()), Some("t#b".into())))
        );
        // `after` outside the prefix range
        assert_eq!(bounds(&q("t#", Some("a"), false)), Some((Some("t#".into()), top("t#"))));
        assert_eq!(bounds(&q("t#", Some("u"), false)), None);
        assert_eq!(bounds(&q("t#", Some("a"), true)), None);
        assert_eq!(bounds(&q("t#", Some("u"), true)), Some((Some("t#".into()), top("t#"))));
        // no prefix: one open end
        assert_eq!(bounds(&q("", Some("m"), false)), Some((Some("m".into()), None)));
        assert_eq!(bounds(&q("", Some("m"), true)), Some((None, Some("m".into()))));
    }

    /// Against a moto server (`BERTH_TEST_MOTO`): the item shape DynamoDB itself reads.
    #[cfg(feature = "moto")]
    mod on_moto {
        use super::*;
        use crate::port_suite::moto::{config, table};

        /// Expiring items carry their expiry in the table's TTL attribute, so DynamoDB removes
        /// them; a plain write clears it.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expiry_is_the_ttl_attribute() {
            let t = table().await;
            let client = aws_sdk_dynamodb::Client::new(&config().await);
            let ttl = |pk: &'static str| {
                let (client, name) = (client.clone(), t.table_name().to_owned());
                async move {
                    let out = client
                        .get_item()
                        .table_name(name)
                        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
                        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("_".into()))
                        .send()
                        .await
                        .unwrap();
                    out.item
                        .unwrap()
                        .get("ttl")
                        .map(|v| v.as_n().unwrap().parse::<u64>().unwrap())
                }
            };
            let at = crate::ports::unix_now() + 3600;
            t.put_expiring("a", "_", b"x".to_vec(), Cond::Absent, Some(at))
                .await
                .unwrap();
            assert_eq!(ttl("a").await, Some(at));
            t.put("a", "_", b"y".to_vec(), Cond::Any).await.unwrap();
            assert_eq!(ttl("a").await, None);
            let d = client
                .describe_time_to_live()
                .table_name(t.table_name())
                .send()
                .await
                .unwrap();
            let spec = d.time_to_live_description().unwrap();
            assert_eq!(spec.attribute_name(), Some("ttl"));
            t.delete_table().await.unwrap();
        }
    }
}

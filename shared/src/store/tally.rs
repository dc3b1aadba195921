//! Counts of a partition's rows, kept as they are written, so that a list's `count` is one
//! read whatever the list's length.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `tally#<partition>` | `_` | [`Tally`]: how many rows of each class the partition holds |
//!
//! A tally counts the rows up to `through` (every row once `complete`). Each transaction that
//! adds or removes a row also writes the tally under its revision: it counts the row when the
//! tally covers it, and otherwise rewrites the tally unchanged, which still fails a concurrent
//! count that moved past the row. A partition written before tallies existed (or whose tally
//! was never asked for) is counted once, in batches, by the first reader ([`Store::count`]);
//! writers keep counting meanwhile, so the result is exact however the two interleave.
//!
//! Layering: part of `store`, which knows `domain` and `ports` only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{decode, encode, Store};
use crate::ports::{Cond, Query, Row, StoreError, Write};

/// How many rows one step of a first count reads.
const COUNT_BATCH: usize = 500;

/// How often a write is tried again when only a tally it keeps moved.
const TALLY_ATTEMPTS: usize = 64;

/// The count of a partition's rows, by class (`""` when rows are not classed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tally {
    #[serde(default)]
    pub(super) counts: BTreeMap<String, u64>,
    /// The rows whose sort keys are up to this one are counted.
    #[serde(default)]
    pub(super) through: Option<String>,
    /// Every row is counted.
    #[serde(default)]
    pub(super) complete: bool,
}

impl Tally {
    fn covers(&self, sk: &str) -> bool {
        self.complete || self.through.as_deref().is_some_and(|t| sk <= t)
    }

    pub(crate) fn count(&self, class: &str) -> u64 {
        self.counts.get(class).copied().unwrap_or(0)
    }
}

/// One row a transaction adds (`+1`) or removes (`-1`), and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counted<'a> {
    pub sk: &'a str,
    pub class: &'a str,
    pub delta: i64,
}

impl<'a> Counted<'a> {
    pub fn added(sk: &'a str) -> Self {
        Counted {
            sk,
            class: "",
            delta: 1,
        }
    }

    pub fn removed(sk: &'a str) -> Self {
        Counted {
            sk,
            class: "",
            delta: -1,
        }
    }

    pub fn of(sk: &'a str, class: &'a str, delta: i64) -> Self {
        Counted { sk, class, delta }
    }
}

pub(super) fn tally_pk(partition: &str) -> String {
    format!("tally#{partition}")
}

impl Store {
    /// The tally item `pk` and the condition that writes it back unchanged meanwhile (an empty
    /// tally when there is none yet).
    pub(super) async fn read_tally(&self, pk: &str) -> Result<(Cond, Tally), StoreError> {
        Ok(match self.t.get(pk, "_").await? {
            Some(row) => (Cond::Rev(row.rev), decode::<Tally>(&row)?),
            None => (Cond::Absent, Tally::default()),
        })
    }

    /// The write that keeps `partition`'s tally right in a transaction that makes `changes`
    /// to its rows. The transaction fails with `Conflict` if the tally moved meanwhile; read
    /// again and retry.
    pub(crate) async fn tally_write(&self, partition: &str, changes: &[Counted<'_>]) -> Result<Write, StoreError> {
        let pk = tally_pk(partition);
        let (cond, mut tally) = self.read_tally(&pk).await?;
        for c in changes {
            if tally.covers(c.sk) {
                let n = tally.counts.entry(c.class.to_owned()).or_default();
                *n = n.saturating_add_signed(c.delta);
            }
        }
        Ok(Write::put(pk, "_", encode(&tally)?, cond))
    }

    /// Applies `writes`, which make `changes` to the rows of partitions, with the writes that
    /// keep those partitions' tallies right: all or nothing, as [`Table::transact`]. A
    /// `Conflict` caused by a tally alone (another writer counted meanwhile) is retried; any
    /// other is returned.
    ///
    /// [`Table::transact`]: crate::ports::Table::transact
    pub(crate) async fn transact_counted(
        &self,
        writes: Vec<Write>,
        changes: &[(&str, Vec<Counted<'_>>)],
    ) -> Result<(), StoreError> {
        let mut conflict = String::new();
        for attempt in 0..TALLY_ATTEMPTS {
            if attempt > 0 {
                super::namespaces::hold_backoff(attempt as u32 - 1).await;
            }
            let mut all = writes.clone();
            for (partition, counted) in changes {
                all.push(self.tally_write(partition, counted).await?);
            }
            match self.t.transact(all).await {
                Err(StoreError::Conflict(c)) => {
                    // retried only when every other condition still holds: the tally moved
                    if !self.conditions_hold(&writes).await? {
                        return Err(StoreError::Conflict(c));
                    }
                    conflict = c;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict(conflict))
    }

    /// Whether the conditions of `writes` hold now.
    pub(super) async fn conditions_hold(&self, writes: &[Write]) -> Result<bool, StoreError> {
        for w in writes {
            let rev = match w.cond {
                Cond::Any => continue,
                _ => self.t.get(&w.pk, &w.sk).await?.map(|row| row.rev),
            };
            let holds = match w.cond {
                Cond::Absent => rev.is_none(),
                Cond::Rev(r) => rev == Some(r),
                Cond::Any => true,
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// How many rows `partition` holds, by class. One read once the partition is counted; the
    /// first call counts it, reading it once in batches of [`COUNT_BATCH`] and asking
    /// `classify` for the class of each row (`None`: not counted).
    pub(crate) async fn tally<F, Fut>(&self, partition: &str, classify: F) -> Result<Tally, StoreError>
    where
        F: Fn(Vec<Row>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Option<String>>, StoreError>>,
    {
        let classify = &classify;
        self.tally_weighed(partition, &tally_pk(partition), |rows| {
            let classes = classify(rows);
            async move { Ok(classes.await?.into_iter().map(|c| c.map(|c| (c, 1))).collect()) }
        })
        .await
    }

    /// The tally item `pk` of the rows of `partition`, where each row counts an amount: as
    /// [`Store::tally`], with `weigh` giving each row's class and amount (`None`: not counted).
    pub(crate) async fn tally_weighed<F, Fut>(&self, partition: &str, pk: &str, weigh: F) -> Result<Tally, StoreError>
    where
        F: Fn(Vec<Row>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Option<(String, u64)>>, StoreError>>,
    {
        loop {
            let (cond, mut tally) = self.read_tally(pk).await?;
            if tally.complete {
                return Ok(tally);
            }
            let q = Query::prefix("").after(tally.through.clone()).limit(COUNT_BATCH);
            let rows = self.t.query(partition, q).await?;
            let full = rows.len() == COUNT_BATCH;
            let last = rows.last().map(|r| r.sk.clone());
            for (class, amount) in weigh(rows).await?.into_iter().flatten() {
                let n = tally.counts.entry(class).or_default();
                *n = n.saturating_add(amount);
            }
            if full {
                tally.through = last;
            } else {
                tally.complete = true;
                tally.through = None;
            }
            match self.t.put(pk, "_", encode(&tally)?, cond).await {
                Ok(_) | Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// How many rows `partition` holds (see [`Store::tally`]), every row counted.
    pub(crate) async fn count(&self, partition: &str) -> Result<u64, StoreError> {
        let tally = self
            .tally(
                partition,
                |rows| async move { Ok(vec![Some(String::new()); rows.len()]) },
            )
            .await?;
        Ok(tally.count(""))
    }

    /// How many rows all of `partitions` hold, counted at once.
    pub(crate) async fn count_all(&self, partitions: &[String]) -> Result<u64, StoreError> {
        let counts = futures::future::try_join_all(partitions.iter().map(|p| self.count(p))).await?;
        Ok(counts.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::ports::Table;

    async fn add(store: &Store, sk: &str) {
        loop {
            let tally = store.tally_write("p", &[Counted::added(sk)]).await.unwrap();
            let row = Write::put("p", sk, b"{}".to_vec(), Cond::Absent);
            match store.t.transact(vec![row, tally]).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return other.unwrap(),
            }
        }
    }

    #[tokio::test]
    async fn a_partition_written_before_its_tally_is_counted_once_and_then_kept() {
        let table = Arc::new(MemoryTable::new());
        let store = Store::new(table.clone());
        // Given 1,234 rows written with no tally
        for i in 0..1234 {
            table
                .put("p", &format!("{i:05}"), b"{}".to_vec(), Cond::Any)
                .await
                .unwrap();
        }
        // when it is counted while writers add rows before and after the count's cursor
        let counting = store.count("p");
        let writing = async {
            for i in 0..300 {
                add(&store, &format!("{:05}x", 1000 + i * 3)).await;
                add(&store, &format!("a{i:05}")).await;
                tokio::task::yield_now().await;
            }
        };
        let (n, ()) = tokio::join!(counting, writing);
        let n = n.unwrap();
        // then every row is counted once, and later counts are one read
        let total = table.query("p", Query::prefix("")).await.unwrap().len() as u64;
        assert!((1234..=total).contains(&n));
        assert_eq!(store.count("p").await.unwrap(), total);
        add(&store, "zz").await;
        assert_eq!(store.count("p").await.unwrap(), total + 1);
    }
}

//! Tasks: the record of each asynchronous operation, newest first.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `tasks` | `<inverted creation time>#<id>` | [`Task`] (newest first) |
//! | `task#<id>` | `_` | the task's sort key |
//!
//! The tasks are counted in the tally of `tasks` (see `tally.rs`). A task that finished longer
//! than [`Retention::tasks`](super::Retention::tasks) ago is removed when new tasks are made,
//! with its count, rather than left to expire, which would leave the count behind.
//!
//! Layering: part of `store`, which knows `domain` and `ports` only.

use chrono::Utc;
use uuid::Uuid;

use super::tally::Counted;
use super::{decode, encode, Store, Task};
use crate::ports::{Cond, Query, StoreError, Write};

/// How many of the oldest tasks each new task looks at to purge.
const PURGE_BATCH: usize = 4;

fn task_sk(t: &Task) -> String {
    let inverted = i64::MAX - t.created.timestamp_micros();
    format!("{inverted:020}#{}", t.id)
}

impl Store {
    /// Creates a task (counted in the tasks' tally), and removes up to [`PURGE_BATCH`] of the
    /// oldest tasks that finished longer than the tasks' retention ago.
    pub async fn create_task(&self, t: &Task) -> Result<(), StoreError> {
        let sk = task_sk(t);
        self.t
            .put(&format!("task#{}", t.id), "_", encode(&sk)?, Cond::Absent)
            .await?;
        let row = Write::put("tasks", &sk, encode(t)?, Cond::Absent);
        self.transact_counted(vec![row], &[("tasks", vec![Counted::added(&sk)])])
            .await?;
        self.purge_tasks().await
    }

    /// Removes the oldest tasks that finished longer than the retention ago, a few at a time:
    /// each new task clears more than it adds, so expired tasks never pile up.
    async fn purge_tasks(&self) -> Result<(), StoreError> {
        let Some(keep) = self.retention().tasks else {
            return Ok(());
        };
        let before = Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let oldest = self
            .t
            .query("tasks", Query::prefix("").reverse().limit(PURGE_BATCH))
            .await?;
        for row in oldest {
            let t: Task = decode(&row)?;
            if t.state.is_final() && t.finished.unwrap_or(t.updated) < before {
                match self.remove_task(&row.sk, row.rev, t.id).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Removes a task and its id pointer, at revision `rev` of the task.
    async fn remove_task(&self, sk: &str, rev: u64, id: Uuid) -> Result<(), StoreError> {
        let writes = vec![
            Write::delete("tasks", sk, Cond::Rev(rev)),
            Write::delete(format!("task#{id}"), "_", Cond::Any),
        ];
        self.transact_counted(writes, &[("tasks", vec![Counted::removed(sk)])])
            .await
    }

    /// How many tasks there are. One read, once counted (see `tally.rs`); the first count
    /// also takes the expiry off tasks an older version let expire, which are purged instead.
    pub async fn count_tasks(&self) -> Result<u64, StoreError> {
        let tally = self
            .tally("tasks", |rows| async move {
                let mut classes = Vec::with_capacity(rows.len());
                for row in rows {
                    let t: Task = decode(&row)?;
                    if t.state.is_final() {
                        let pointer = format!("task#{}", t.id);
                        let _ = self
                            .t
                            .put("tasks", &row.sk, row.value.clone(), Cond::Rev(row.rev))
                            .await;
                        if let Some(p) = self.t.get(&pointer, "_").await? {
                            let _ = self.t.put(&pointer, "_", p.value, Cond::Rev(p.rev)).await;
                        }
                    }
                    classes.push(Some(String::new()));
                }
                Ok(classes)
            })
            .await?;
        Ok(tally.count(""))
    }

    pub async fn task(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        let Some(row) = self.t.get(&format!("task#{id}"), "_").await? else {
            return Ok(None);
        };
        let sk: String = decode(&row)?;
        Ok(match self.t.get("tasks", &sk).await? {
            Some(row) => Some(decode(&row)?),
            None => None,
        })
    }

    /// Updates a task under its revision (retrying on concurrent writes).
    pub async fn update_task<E: From<StoreError>>(
        &self,
        id: Uuid,
        mut f: impl FnMut(&mut Task) -> Result<(), E>,
    ) -> Result<Task, E> {
        let row = self
            .t
            .get(&format!("task#{id}"), "_")
            .await?
            .ok_or(StoreError::NotFound)?;
        let sk: String = decode(&row)?;
        self.modify::<Task, E>("tasks", &sk, |t| {
            f(t)?;
            t.updated = chrono::Utc::now();
            Ok(())
        })
        .await
    }

    /// Tasks, newest first.
    pub async fn tasks(&self) -> Result<Vec<Task>, StoreError> {
        self.all("tasks").await
    }

    pub async fn delete_task(&self, t: &Task) -> Result<(), StoreError> {
        let sk = task_sk(t);
        loop {
            let Some(row) = self.t.get("tasks", &sk).await? else {
                return self.t.delete(&format!("task#{}", t.id), "_", Cond::Any).await;
            };
            match self.remove_task(&sk, row.rev, t.id).await {
                // changed meanwhile: look again
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
    }
}

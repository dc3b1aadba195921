//! Schedules: work Berth starts by itself, at an interval or at the minutes of a cron
//! expression (pulpcore's `TaskSchedule`, with what it runs spelled out).
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `schedules` | `<id>` | [`Schedule`] |
//! | `schedule-names` | `<name>` | id |
//!
//! A firing claims its slot by rewriting the schedule at the revision it read, with the next
//! slot and the id of the task it is about to start ([`Store::claim_schedule`]): of two firers
//! (two ticks, a tick delivered twice, two processes) exactly one wins, and the loser starts
//! nothing. The task is made after the claim, so a crash between the two leaves a schedule whose
//! last task does not exist, which counts as finished: that slot is lost, none runs twice.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, encode, Store};
use crate::domain::schedule::Cadence;
use crate::ports::{Cond, StoreError, Write};

const SCHEDULES: &str = "schedules";
const SCHEDULE_NAMES: &str = "schedule-names";

/// What a schedule starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduledWork {
    /// A sync of a repository from a remote, as `…/sync/` starts it.
    Sync {
        repository: Uuid,
        remote: Uuid,
        mirror: bool,
        signed_only: bool,
    },
    /// An orphan cleanup, as `orphans/cleanup/` starts it.
    OrphanCleanup { protection_secs: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: Uuid,
    pub name: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub work: ScheduledWork,
    pub cadence: Cadence,
    /// A disabled schedule keeps its settings and fires nothing.
    pub enabled: bool,
    /// The slot it fires at next (`None` while disabled).
    pub next_dispatch: Option<DateTime<Utc>>,
    /// The task it started last; until that task is finished, nothing more is started.
    pub last_task: Option<Uuid>,
    /// The number of the user who made it (tasks it starts are theirs).
    #[serde(default)]
    pub owner: Option<u64>,
}

impl Schedule {
    /// A new enabled schedule whose first slot follows `now`.
    pub fn new(name: &str, work: ScheduledWork, cadence: Cadence, now: DateTime<Utc>) -> Schedule {
        Schedule {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            created: now,
            updated: now,
            work,
            next_dispatch: Some(cadence.first_after(now)),
            cadence,
            enabled: true,
            last_task: None,
            owner: None,
        }
    }

    /// Due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.next_dispatch.is_some_and(|t| t <= now)
    }
}

impl Store {
    /// Creates a schedule, its name and its item in one transaction. `Conflict` when the name
    /// is taken.
    pub async fn create_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        let items = vec![Write::put(SCHEDULES, s.id.to_string(), encode(s)?, Cond::Absent)];
        self.create_named(
            (SCHEDULE_NAMES, &s.name),
            &s.id,
            items,
            &[],
            |row| Ok((SCHEDULES.to_owned(), decode::<Uuid>(row)?.to_string())),
            |_| Ok(true),
        )
        .await
    }

    /// The schedule of `id`. One read.
    pub async fn schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError> {
        Ok(self.schedule_at(id).await?.map(|(_, s)| s))
    }

    /// The schedule of `id` with the revision read (for [`Store::claim_schedule`]).
    pub async fn schedule_at(&self, id: Uuid) -> Result<Option<(u64, Schedule)>, StoreError> {
        self.get_json(SCHEDULES, &id.to_string()).await
    }

    /// Every schedule, with the revisions read, in name order. One query of the schedules
    /// partition: schedules are made by hand and few.
    pub async fn schedules(&self) -> Result<Vec<(u64, Schedule)>, StoreError> {
        let rows = self.t.query(SCHEDULES, crate::ports::Query::prefix("")).await?;
        let mut all = rows
            .iter()
            .map(|r| Ok((r.rev, decode::<Schedule>(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        all.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        Ok(all)
    }

    /// Changes a schedule (a rename claims the new name first: `Conflict` when it is taken).
    pub async fn update_schedule<E: From<StoreError>>(
        &self,
        id: Uuid,
        mut f: impl FnMut(&mut Schedule) -> Result<(), E>,
    ) -> Result<Schedule, E> {
        self.update_named(
            SCHEDULE_NAMES,
            (SCHEDULES, &id.to_string()),
            id,
            |s: &Schedule| s.name.clone(),
            |_: &Schedule| None,
            |s| {
                f(s)?;
                s.updated = Utc::now();
                Ok(())
            },
        )
        .await
    }

    pub async fn delete_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        self.delete_named(SCHEDULE_NAMES, &s.name, s.id, (SCHEDULES, &s.id.to_string()), None)
            .await
    }

    /// Claims a firing: writes `fired` (the schedule with its next slot and its new last task)
    /// if the schedule is still at revision `rev`. `Conflict` when it changed: another firer
    /// claimed the slot, or the schedule was edited (it is looked at again on the next tick).
    pub async fn claim_schedule(&self, rev: u64, fired: &Schedule) -> Result<(), StoreError> {
        self.t
            .put(SCHEDULES, &fired.id.to_string(), encode(fired)?, Cond::Rev(rev))
            .await
            .map(|_| ())
    }
}

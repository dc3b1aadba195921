//! Schedules: syncs and orphan cleanups Berth starts by itself ([`Schedule`]), managed through
//! the API and fired by [`Manage::fire_schedules`], which the embedded runtime calls every
//! second and, on AWS, a job that an EventBridge Scheduler schedule sends through SQS every
//! minute.
//!
//! Rules:
//! - a sync schedule may be made, changed, seen and removed by whoever may sync its repository
//!   from its remote (and see it); an orphan cleanup schedule by superusers only;
//! - a firing claims its slot first (see the store's module), so two firers never start the
//!   same slot; a schedule whose last task has not finished starts nothing (as pulpcore's
//!   dispatcher): it stays due and fires once that task is done, so one schedule never runs its
//!   repository twice at once (and the sync itself holds the repository's lease);
//! - slots missed while nothing fired (the server was down) are not caught up: the schedule
//!   fires once, then at its next slot after now;
//! - a firing runs as the schedule's owner: when the owner is gone, inactive, or may no longer
//!   sync that repository, the firing records a failed task saying so and starts nothing.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! a service.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::invalid::Invalid;
use super::manage::SYNC_TASK_NAME;
use super::{Act, Identity, Manage, ManageError, Target};
use crate::domain::schedule::Cadence;
use crate::store::{Listing, Page, RepositoryKind, Schedule, ScheduledWork, Task};

type Result<T> = std::result::Result<T, ManageError>;

/// What a schedule is made of, as a create or an update gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub name: String,
    pub work: ScheduledWork,
    pub cadence: Cadence,
    pub enabled: bool,
}

impl ScheduleSpec {
    pub fn of(s: &Schedule) -> ScheduleSpec {
        ScheduleSpec {
            name: s.name.clone(),
            work: s.work.clone(),
            cadence: s.cadence.clone(),
            enabled: s.enabled,
        }
    }
}

/// The list's filters (pulpcore's `TaskScheduleFilter`).
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    pub name: Option<String>,
    pub name_contains: Option<String>,
    pub task_name: Option<String>,
    pub task_name_contains: Option<String>,
    pub ids: Option<Vec<Uuid>>,
    pub order: ScheduleOrder,
    pub descending: bool,
}

/// What a list of schedules is ordered by (pulpcore's default: newest first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScheduleOrder {
    #[default]
    Created,
    Updated,
    Name,
    TaskName,
    NextDispatch,
    Interval,
    Id,
}

/// The task name a schedule's work runs under, as pulpcore names those tasks.
pub fn task_name(work: &ScheduledWork) -> &'static str {
    match work {
        ScheduledWork::Sync { .. } => SYNC_TASK_NAME,
        ScheduledWork::OrphanCleanup { .. } => super::ORPHAN_CLEANUP_TASK_NAME,
    }
}

/// What one round of firing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fired {
    /// Tasks started.
    pub started: Vec<Uuid>,
    /// Due schedules whose last task is still running.
    pub waiting: usize,
    /// Due schedules another firer claimed first.
    pub lost: usize,
}

impl Manage {
    /// Checks that `who` may make, change or remove a schedule of `work` (and, on the way,
    /// that what it names exists).
    async fn may_schedule(&self, who: &Identity, work: &ScheduledWork) -> Result<()> {
        match work {
            ScheduledWork::OrphanCleanup { .. } => {
                if who.admin {
                    Ok(())
                } else {
                    Err(ManageError::Forbidden)
                }
            }
            ScheduledWork::Sync { repository, remote, .. } => {
                match self.store().repository(*repository).await? {
                    Some(r) if r.kind == RepositoryKind::Mirror => {}
                    _ => return Err(ManageError::invalid("repository", Invalid::NoObject)),
                }
                match self.store().remote(*remote).await? {
                    None => return Err(ManageError::invalid("remote", Invalid::NoObject)),
                    Some(r) if r.kind != crate::store::RemoteKind::Container => {
                        return Err(ManageError::invalid("remote", Invalid::PullThroughRemote))
                    }
                    Some(_) => {}
                }
                self.authorize(
                    who,
                    Target::Repository(*repository, RepositoryKind::Mirror),
                    Act::Sync(*remote),
                )
                .await
                .map_err(|e| match e {
                    ManageError::NotFound => ManageError::invalid("repository", Invalid::NoObject),
                    e => e,
                })
            }
        }
    }

    /// Whether `who` sees schedule `s`.
    async fn sees_schedule(&self, who: &Identity, s: &Schedule) -> Result<bool> {
        if who.admin {
            return Ok(true);
        }
        Ok(match &s.work {
            ScheduledWork::OrphanCleanup { .. } => false,
            ScheduledWork::Sync { repository, .. } => self
                .authorize(who, Target::Repository(*repository, RepositoryKind::Mirror), Act::View)
                .await
                .is_ok(),
        })
    }

    /// The schedules `who` sees, filtered, ordered and paged. Reads every schedule (they are
    /// made by hand and few).
    pub async fn schedules_for(&self, who: &Identity, f: &ScheduleFilter, page: Page) -> Result<Listing<Schedule>> {
        let mut out = Vec::new();
        for (_, s) in self.store().schedules().await? {
            let tn = task_name(&s.work);
            let keep = f.name.as_ref().is_none_or(|n| *n == s.name)
                && f.name_contains.as_ref().is_none_or(|n| s.name.contains(n.as_str()))
                && f.task_name.as_ref().is_none_or(|n| n == tn)
                && f.task_name_contains.as_ref().is_none_or(|n| tn.contains(n.as_str()))
                && f.ids.as_ref().is_none_or(|ids| ids.contains(&s.id));
            if keep && self.sees_schedule(who, &s).await? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| {
            let o = match f.order {
                ScheduleOrder::Created => a.created.cmp(&b.created),
                ScheduleOrder::Updated => a.updated.cmp(&b.updated),
                ScheduleOrder::Name => a.name.cmp(&b.name),
                ScheduleOrder::TaskName => task_name(&a.work).cmp(task_name(&b.work)),
                ScheduleOrder::NextDispatch => a.next_dispatch.cmp(&b.next_dispatch),
                ScheduleOrder::Interval => a.cadence.interval_secs().cmp(&b.cadence.interval_secs()),
                ScheduleOrder::Id => a.id.cmp(&b.id),
            };
            if f.descending {
                o.reverse()
            } else {
                o
            }
        });
        let count = out.len();
        let items = out.into_iter().skip(page.offset).take(page.limit).collect();
        Ok(Listing { items, count })
    }

    /// Schedule `id`, when `who` sees it.
    pub async fn schedule_for(&self, who: &Identity, id: Uuid) -> Result<Schedule> {
        let s = self.store().schedule(id).await?.ok_or(ManageError::NotFound)?;
        if !self.sees_schedule(who, &s).await? {
            return Err(ManageError::NotFound);
        }
        Ok(s)
    }

    /// Makes a schedule; its first slot follows now.
    pub async fn create_schedule_for(&self, who: &Identity, spec: ScheduleSpec) -> Result<Schedule> {
        self.may_schedule(who, &spec.work).await?;
        let mut s = Schedule::new(&spec.name, spec.work, spec.cadence, Utc::now());
        s.enabled = spec.enabled;
        if !s.enabled {
            s.next_dispatch = None;
        }
        s.owner = super::acting::actor().map(|a| a.user_id).filter(|id| *id != 0);
        match self.store().create_schedule(&s).await {
            Ok(()) => Ok(s),
            Err(crate::ports::StoreError::Conflict(_)) => Err(ManageError::invalid("name", Invalid::Unique)),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a schedule `who` may manage into what `f` makes of it (checked as a create).
    /// A new cadence, or enabling it again, starts its slots afresh from now.
    pub async fn update_schedule_for<E: From<ManageError>>(
        &self,
        who: &Identity,
        id: Uuid,
        f: impl FnOnce(&Schedule) -> std::result::Result<ScheduleSpec, E>,
    ) -> std::result::Result<Schedule, E> {
        let before = self.schedule_for(who, id).await?;
        self.may_schedule(who, &before.work).await?;
        let spec = f(&before)?;
        if spec.work != before.work {
            self.may_schedule(who, &spec.work).await?;
        }
        let res = self
            .store()
            .update_schedule(id, |s: &mut Schedule| -> Result<()> {
                let now = Utc::now();
                let restart = s.cadence != spec.cadence || (spec.enabled && !s.enabled);
                s.name = spec.name.clone();
                s.work = spec.work.clone();
                s.cadence = spec.cadence.clone();
                s.enabled = spec.enabled;
                if !s.enabled {
                    s.next_dispatch = None;
                } else if restart || s.next_dispatch.is_none() {
                    s.next_dispatch = Some(s.cadence.first_after(now));
                }
                Ok(())
            })
            .await;
        match res {
            Err(ManageError::Internal(e)) if is_conflict(e.as_ref()) => {
                Err(ManageError::invalid("name", Invalid::Unique).into())
            }
            other => Ok(other?),
        }
    }

    /// Removes a schedule `who` may manage (the tasks it started stay).
    pub async fn delete_schedule_for(&self, who: &Identity, id: Uuid) -> Result<()> {
        let s = self.schedule_for(who, id).await?;
        self.may_schedule(who, &s.work).await?;
        Ok(self.store().delete_schedule(&s).await?)
    }

    /// Fires every schedule due at `now` (see the module's rules). One query of the schedules
    /// partition, and for each due schedule a read of its last task and one conditional write.
    pub async fn fire_schedules(&self, now: DateTime<Utc>) -> Result<Fired> {
        let mut fired = Fired::default();
        for (rev, s) in self.store().schedules().await? {
            if !s.due(now) {
                continue;
            }
            if let Some(last) = s.last_task {
                if let Some(t) = self.store().task(last).await? {
                    if !t.state.is_final() {
                        fired.waiting += 1;
                        continue;
                    }
                }
            }
            let mut t = Task::new(task_name(&s.work));
            t.owner = s.owner;
            let mut claimed = s.clone();
            let due = s.next_dispatch.unwrap_or(now);
            claimed.next_dispatch = Some(s.cadence.next_after(due, now));
            claimed.last_task = Some(t.id);
            match self.store().claim_schedule(rev, &claimed).await {
                Ok(()) => {}
                Err(crate::ports::StoreError::Conflict(_)) => {
                    fired.lost += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let id = t.id;
            match self.start_scheduled(t, &s).await {
                Ok(()) => {
                    tracing::info!(schedule = %s.name, task = %id, "schedule fired");
                    fired.started.push(id);
                }
                Err(e) => {
                    tracing::warn!(schedule = %s.name, task = %id, error = %e, "schedule could not start its task")
                }
            }
        }
        Ok(fired)
    }

    /// Starts what schedule `s` runs as task `t`, after checking its owner still may; a
    /// refusal is recorded as task `t`, failed.
    async fn start_scheduled(&self, t: Task, s: &Schedule) -> Result<()> {
        let refusal = match self.owner_refusal(s).await? {
            Some(why) => Some(why),
            None => match &s.work {
                ScheduledWork::Sync {
                    repository,
                    remote,
                    mirror,
                    signed_only,
                } => match self.store().repository(*repository).await? {
                    Some(repo) => match self.start_sync(t.clone(), &repo, *remote, *mirror, *signed_only).await {
                        Ok(_) => None,
                        Err(ManageError::Field { .. }) => Some("the remote no longer exists".to_owned()),
                        Err(e) => return Err(e),
                    },
                    None => Some("the repository no longer exists".to_owned()),
                },
                ScheduledWork::OrphanCleanup { protection_secs } => {
                    self.start_orphan_cleanup(t.clone(), std::time::Duration::from_secs(*protection_secs), None)
                        .await?;
                    None
                }
            },
        };
        if let Some(why) = refusal {
            let mut failed = t;
            let now = Utc::now();
            failed.state = crate::store::TaskState::Failed;
            failed.started = Some(now);
            failed.finished = Some(now);
            failed.error = Some(format!("schedule {}: {why}", s.name));
            self.store().create_task(&failed).await?;
        }
        Ok(())
    }

    /// Why the schedule's owner may no longer run it, if they may not.
    async fn owner_refusal(&self, s: &Schedule) -> Result<Option<String>> {
        let (Some(owner), Some(accounts)) = (s.owner, self.accounts.clone()) else {
            return Ok(None);
        };
        let Some(user) = self.store().user_by_id(owner).await? else {
            return Ok(Some("its owner no longer exists".into()));
        };
        let Some(who) = accounts.identity(&user.name).await? else {
            return Ok(Some(format!("its owner {} is inactive", user.name)));
        };
        let may = match &s.work {
            ScheduledWork::OrphanCleanup { .. } => who.admin,
            ScheduledWork::Sync { repository, remote, .. } => {
                if self.store().repository(*repository).await?.is_none() {
                    return Ok(Some("the repository no longer exists".into()));
                }
                if self.store().remote(*remote).await?.is_none() {
                    return Ok(Some("the remote no longer exists".into()));
                }
                let target = Target::Repository(*repository, RepositoryKind::Mirror);
                match self.authorize(&who, target, Act::Sync(*remote)).await {
                    Ok(()) => true,
                    Err(ManageError::Internal(e)) => return Err(ManageError::Internal(e)),
                    Err(_) => false,
                }
            }
        };
        Ok((!may).then(|| format!("its owner {} may no longer run it", user.name)))
    }
}

fn is_conflict(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        e.downcast_ref::<crate::ports::StoreError>(),
        Some(crate::ports::StoreError::Conflict(_))
    )
}

//! Schedules (`task-schedules/`): listed and read as pulpcore has them; made, changed and
//! removed through Berth's own operations at the same paths. A body names what runs
//! (`task_name`, the sync's `repository` and `remote`, `mirror`, `signed_only`, or the
//! cleanup's `orphan_protection_time` in minutes) and when: `dispatch_interval` (a duration:
//! `HH:MM:SS`, `D HH:MM:SS`, ISO 8601 or seconds) or `cron` (five fields, UTC), one of the two.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use http::StatusCode;
use serde_json::Value;

use super::errors::json_response;
use super::input::{Input, REQUIRED};
use super::{no_content, ops, render, Answer, ApiError, Ctx};
use crate::domain::schedule::{parse_interval, Cadence};
use crate::services::{ScheduleFilter, ScheduleOrder, ScheduleSpec, ORPHAN_CLEANUP_TASK_NAME, SYNC_TASK_NAME};
use crate::store::{RepositoryKind, ScheduledWork};

const REPO: &str = "/pulp/api/v3/repositories/container/container/{id}/";
const REMOTE: &str = "/pulp/api/v3/remotes/container/container/{id}/";

pub(super) async fn list(c: &Ctx<'_>) -> Answer {
    let names = c.names(render::schedule_href, render::schedule_prn);
    let ids = match (names.ids, names.also_ids) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
    };
    let (order, descending) = ordering(c)?;
    let f = ScheduleFilter {
        name: c.q_owned("name"),
        name_contains: c.q_owned("name__contains"),
        task_name: c.q_owned("task_name"),
        task_name_contains: c.q_owned("task_name__contains"),
        ids,
        order,
        descending,
    };
    let page = c.paging()?;
    let listing = c.manage().schedules_for(&c.who, &f, page).await?;
    c.page(page, listing.map(|s| render::schedule(&s)))
}

/// The first `ordering` field (pulpcore's default: newest first).
fn ordering(c: &Ctx<'_>) -> Result<(ScheduleOrder, bool), ApiError> {
    let Some(first) = c.q_list("ordering").and_then(|o| o.into_iter().next()) else {
        return Ok((ScheduleOrder::Created, true));
    };
    let (field, desc) = match first.strip_prefix('-') {
        Some(f) => (f, true),
        None => (first.as_str(), false),
    };
    let order = match field {
        "pulp_created" => ScheduleOrder::Created,
        "pulp_last_updated" => ScheduleOrder::Updated,
        "name" => ScheduleOrder::Name,
        "task_name" => ScheduleOrder::TaskName,
        "next_dispatch" => ScheduleOrder::NextDispatch,
        "dispatch_interval" => ScheduleOrder::Interval,
        "pk" | "pulp_id" => ScheduleOrder::Id,
        _ => {
            return Err(ApiError::field(
                "ordering",
                format!("Select a valid choice. {first} is not one of the available choices."),
            ))
        }
    };
    Ok((order, desc))
}

pub(super) async fn read(c: &Ctx<'_>) -> Answer {
    c.ok(render::schedule(&c.manage().schedule_for(&c.who, c.id()).await?))
}

pub(super) async fn create(c: &Ctx<'_>) -> Answer {
    let spec = spec(c, None)?;
    let s = c.manage().create_schedule_for(&c.who, spec).await?;
    Ok(json_response(StatusCode::CREATED, &render::schedule(&s)))
}

pub(super) async fn update(c: &Ctx<'_>, partial: bool) -> Answer {
    let s = c
        .manage()
        .update_schedule_for(&c.who, c.id(), |before| {
            spec(c, Some((before, partial))).map_err(|e| match e {
                ApiError::Fields(f) => crate::services::ManageError::field(
                    "body",
                    f.into_iter()
                        .map(|(k, v)| format!("{k}: {}", v.join(" ")))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => crate::services::ManageError::field("body", "invalid"),
            })
        })
        .await;
    match s {
        Ok(s) => c.ok(render::schedule(&s)),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete(c: &Ctx<'_>) -> Answer {
    c.manage().delete_schedule_for(&c.who, c.id()).await?;
    Ok(no_content())
}

/// The schedule a body describes: a create's (`before` none), or an update of `before`
/// (`partial`: absent fields keep their values).
fn spec(c: &Ctx<'_>, before: Option<(&crate::store::Schedule, bool)>) -> Result<ScheduleSpec, ApiError> {
    let partial = before.is_some_and(|(_, p)| p);
    let mut i = c.input(partial)?;
    // a full update (PUT) replaces: what it leaves out takes its default, as on create
    let old = before.filter(|(_, p)| *p).map(|(s, _)| ScheduleSpec::of(s));
    let name = match i.string("name", true) {
        Some(n) if n.len() > 255 => {
            i.err("name", "Ensure this field has no more than 255 characters.");
            None
        }
        n => n,
    };
    let name = name
        .or_else(|| old.as_ref().map(|o| o.name.clone()))
        .unwrap_or_default();

    // what runs: named by task_name, or a sync when a repository is given
    let old_task = old.as_ref().map(|o| crate::services::schedule_task_name(&o.work));
    let task = match i.string("task_name", false) {
        Some(t) if t == SYNC_TASK_NAME || t == ORPHAN_CLEANUP_TASK_NAME => Some(t),
        Some(t) => {
            i.err(
                "task_name",
                format!("\"{t}\" is not a valid choice: schedules run \"{SYNC_TASK_NAME}\" or \"{ORPHAN_CLEANUP_TASK_NAME}\"."),
            );
            None
        }
        None if i.has("repository") => Some(SYNC_TASK_NAME.to_owned()),
        None => old_task.map(str::to_owned),
    };
    let work = match task.as_deref() {
        Some(SYNC_TASK_NAME) => sync_work(&mut i, old.as_ref().map(|o| &o.work), partial),
        Some(_) => {
            let minutes = match i.opt_uint("orphan_protection_time", 0) {
                Some(Some(m)) => Some(m),
                Some(None) | None => match old.as_ref().map(|o| &o.work) {
                    Some(ScheduledWork::OrphanCleanup { protection_secs }) => Some(protection_secs / 60),
                    _ => None,
                },
            };
            let minutes = minutes.unwrap_or(crate::services::DEFAULT_PROTECTION.as_secs() / 60);
            Some(ScheduledWork::OrphanCleanup {
                protection_secs: minutes.saturating_mul(60),
            })
        }
        None => {
            if !partial && !i.has("task_name") {
                i.err("task_name", REQUIRED);
            }
            None
        }
    };

    let cadence = cadence(&mut i, old.as_ref().map(|o| &o.cadence), partial);
    let enabled = i
        .boolean("enabled")
        .or_else(|| old.as_ref().map(|o| o.enabled))
        .unwrap_or(true);
    i.finish()?;
    match (work, cadence) {
        (Some(work), Some(cadence)) => Ok(ScheduleSpec {
            name,
            work,
            cadence,
            enabled,
        }),
        _ => Err(ApiError::field("task_name", REQUIRED)),
    }
}

/// A sync's repository, remote and flags from the body, over `old`'s.
fn sync_work(i: &mut Input, old: Option<&ScheduledWork>, partial: bool) -> Option<ScheduledWork> {
    let (old_repo, old_remote, old_mirror, old_signed) = match old {
        Some(ScheduledWork::Sync {
            repository,
            remote,
            mirror,
            signed_only,
        }) => (Some(*repository), Some(*remote), *mirror, *signed_only),
        _ => (None, None, false, false),
    };
    let href = |i: &mut Input, field: &'static str, pattern: &str, old: Option<uuid::Uuid>| match i
        .string(field, old.is_none() || !partial)
    {
        Some(h) => match ops::parse_href(pattern, &h) {
            Some((Some(id), None)) => Some(id),
            _ => {
                i.err(field, format!("Invalid hyperlink - No URL match. ({h})"));
                None
            }
        },
        None => old,
    };
    let repository = href(i, "repository", REPO, old_repo);
    let remote = href(i, "remote", REMOTE, old_remote);
    let mirror = i.boolean("mirror").unwrap_or(old_mirror);
    let signed_only = i.boolean("signed_only").unwrap_or(old_signed);
    Some(ScheduledWork::Sync {
        repository: repository?,
        remote: remote?,
        mirror,
        signed_only,
    })
}

/// `dispatch_interval` or `cron` (exactly one), over `old`.
fn cadence(i: &mut Input, old: Option<&Cadence>, partial: bool) -> Option<Cadence> {
    let interval = i.opt_string("dispatch_interval", true);
    let cron = i.opt_string("cron", true);
    let given_interval = match interval {
        Some(Some(s)) => match parse_interval(&s).and_then(Cadence::every) {
            Ok(c) => Some(c),
            Err(e) => {
                i.err("dispatch_interval", e);
                return None;
            }
        },
        _ => None,
    };
    let given_cron = match cron {
        Some(Some(s)) => match Cadence::cron(&s) {
            Ok(c) => Some(c),
            Err(e) => {
                i.err("cron", e);
                return None;
            }
        },
        _ => None,
    };
    match (given_interval, given_cron) {
        (Some(_), Some(_)) => {
            i.err("cron", "Give dispatch_interval or cron, not both.");
            None
        }
        (Some(c), None) | (None, Some(c)) => Some(c),
        (None, None) => match old {
            // a partial update that names neither keeps the cadence
            Some(c) if partial && !(i.has("dispatch_interval") && i.has("cron")) => Some(c.clone()),
            _ => {
                i.err(
                    "dispatch_interval",
                    "Give dispatch_interval (a duration) or cron (a cron expression).",
                );
                None
            }
        },
    }
}

#[allow(dead_code)]
fn _kinds(_: RepositoryKind, _: Value) {}

//! Tasks: list with Pulp's filters (state, name, resources, correlation id), read, cancel,
//! delete.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;

use super::errors::message;
use super::{render, Answer, ApiError, Ctx};
use crate::services::{ManageError, TaskFilter, TaskResources};
use crate::store::TaskState;

pub(super) async fn list(c: &Ctx<'_>) -> Answer {
    let mut resources = Vec::new();
    for (key, which) in [
        ("reserved_resources", TaskResources::Any),
        ("exclusive_resources", TaskResources::Exclusive),
        ("shared_resources", TaskResources::Shared),
        ("created_resources", TaskResources::Created),
    ] {
        if let Some(wanted) = c.q_any(key) {
            resources.push((which, wanted));
        }
    }
    // no task has a worker, a parent or a group (they are rendered null)
    let f = TaskFilter {
        names: c.names(render::task_href, |id| format!("prn:core.task:{id}")),
        states: c
            .q_any("state")
            .map(|s| s.iter().filter_map(|x| TaskState::parse(x)).collect()),
        resources,
        logging_cid: c.q_owned("logging_cid"),
        logging_cid_contains: c.q_owned("logging_cid__contains"),
        started: c.time_range("started_at")?,
        finished: c.time_range("finished_at")?,
        nothing: ["worker", "worker__in", "parent_task", "task_group"]
            .iter()
            .any(|k| c.q_set(k).is_some()),
    };
    let page = c.paging()?;
    let listing = c.catalog().tasks(&f, render::resource_href, page).await?;
    c.page(page, listing.map(|t| render::task(&t)))
}

pub(super) async fn read(c: &Ctx<'_>) -> Answer {
    c.ok(render::task(&c.manage().task(c.id()).await?))
}

pub(super) async fn cancel(c: &Ctx<'_>) -> Answer {
    let mut i = c.input(false)?;
    let state = i.string("state", true);
    i.finish()?;
    if state.as_deref() != Some("canceled") {
        return Err(ApiError::field("state", "The only acceptable value is 'canceled'."));
    }
    let t = match c.manage().cancel_task(c.id()).await {
        Err(ManageError::Field { reason, .. }) => return Err(ApiError::detail(409, message(&reason))),
        other => other?,
    };
    c.ok(render::task(&t))
}

pub(super) async fn delete(c: &Ctx<'_>) -> Answer {
    c.manage().delete_task(c.id()).await?;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

//! Pull-through distributions (`/distributions/container/pull-through/`): list, create,
//! read, update, delete. Create, update and delete answer 202 with a task that already
//! completed, as Pulp's asynchronous viewset does. A pull-through distribution serves no
//! repository: `<base_path>/<upstream path>` pulls through its remote, and `distributions`
//! lists what those pulls made.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use uuid::Uuid;

use super::errors::NO_URL_MATCH;
use super::{input, ops, render, Answer, ApiError, Ctx};
use crate::domain::RepoName;
use crate::services::{DistributionFilter, PullThroughSpec};
use crate::store::{Distribution, ResourceRef};

const PT_REMOTE: &str = "/pulp/api/v3/remotes/container/pull-through/{id}/";
const CONTAINER_REMOTE: &str = "/pulp/api/v3/remotes/container/container/{id}/";
/// DRF's words for an href of another resource's view.
const INCORRECT_MATCH: &str = "Invalid hyperlink - Incorrect URL match.";

pub(super) async fn list(c: &Ctx<'_>) -> Answer {
    let mut names = c.names(render::pt_dist_href, render::pt_dist_prn);
    names.labels = c.labels()?;
    let f = DistributionFilter {
        names,
        base_path: c.q_owned("base_path"),
        base_path_in: c.q_list("base_path__in"),
        base_path_contains: c.q_owned("base_path__contains"),
        base_path_icontains: c.q_owned("base_path__icontains"),
        pull_through: true,
        ..DistributionFilter::default()
    };
    let page = c.paging()?;
    let listing = c.catalog().pull_through_distributions(&f, page).await?;
    c.page(
        page,
        listing.map(|(d, children)| render::pull_through_distribution(&d, &children)),
    )
}

pub(super) async fn read(c: &Ctx<'_>) -> Answer {
    let (d, children) = c.catalog().pull_through_distribution(c.id()).await?;
    c.ok(render::pull_through_distribution(&d, &children))
}

pub(super) async fn create(c: &Ctx<'_>) -> Answer {
    let spec = spec(c, None, false)?;
    let d = c.manage().create_pull_through_distribution_for(&c.who, spec).await?;
    let r = ResourceRef::PullThroughDistribution { id: d.id };
    let t = c
        .manage()
        .completed_task(
            "pulpcore.app.tasks.base.general_create",
            vec![],
            vec![r.clone()],
            Some(r),
        )
        .await?;
    c.task(&t)
}

pub(super) async fn update(c: &Ctx<'_>, partial: bool) -> Answer {
    let id = c.id();
    let (before, _) = c.catalog().pull_through_distribution(id).await?;
    let spec = spec(c, Some(&before), partial)?;
    c.manage()
        .update_pull_through_distribution_for(&c.who, id, |_| Ok(spec))
        .await?;
    c.done(
        "pulpcore.app.tasks.base.general_update",
        ResourceRef::PullThroughDistribution { id },
    )
    .await
}

/// Deletes the distribution and the distributions pulls through it made.
pub(super) async fn delete(c: &Ctx<'_>) -> Answer {
    let id = c.id();
    c.manage().delete_pull_through_distribution_for(&c.who, id).await?;
    c.done(
        "pulpcore.app.tasks.base.general_delete",
        ResourceRef::PullThroughDistribution { id },
    )
    .await
}

/// The pull-through remote an href names; the words of the refusal otherwise.
fn remote_id(href: &str) -> Result<Uuid, &'static str> {
    match ops::parse_href(PT_REMOTE, href) {
        Some((Some(id), _)) => Ok(id),
        _ if ops::parse_href(CONTAINER_REMOTE, href).is_some() => Err(INCORRECT_MATCH),
        _ => Err(NO_URL_MATCH),
    }
}

/// Reads a pull-through distribution body, starting from `before` for partial updates.
fn spec(c: &Ctx<'_>, before: Option<&Distribution>, partial: bool) -> Result<PullThroughSpec, ApiError> {
    let mut i = c.input(partial)?;
    let name = i.string("name", true);
    let base_path = match i.string("base_path", true) {
        Some(bp) => match RepoName::parse(&bp) {
            Ok(p) => Some(p),
            Err(_) => {
                i.err(
                    "base_path",
                    "Each '/'-separated part must be lowercase letters and digits, separated by '.', '_', '__' or '-'; at most 255 characters.",
                );
                None
            }
        },
        None => None,
    };
    let remote = match i.string("remote", true) {
        Some(h) => match remote_id(&h) {
            Ok(id) => Some(id),
            Err(words) => {
                i.err("remote", words);
                None
            }
        },
        None => None,
    };
    let private = i.boolean("private");
    let hidden = i.boolean("hidden");
    let description = i.opt_string("description", false);
    let labels = i.labels("pulp_labels");
    for field in ["repository", "repository_version"] {
        if let Some(Some(_)) = i.opt_string(field, true) {
            i.err(
                field,
                "A pull-through distribution serves no repository; leave this null.",
            );
        }
    }
    if let Some(Some(_)) = i.opt_string("content_guard", true) {
        i.err("content_guard", "Content guards are not supported; leave this null.");
    }
    // `distributions` is filled by pulls, never by a request: read-only here
    i.finish()?;
    let before = before.filter(|_| partial);
    let required = |field: &'static str| ApiError::field(field, input::REQUIRED);
    Ok(PullThroughSpec {
        name: name
            .or_else(|| before.map(|b| b.name.clone()))
            .ok_or_else(|| required("name"))?,
        base_path: base_path
            .or_else(|| before.map(|b| b.base_path.clone()))
            .ok_or_else(|| required("base_path"))?,
        remote: remote
            .or_else(|| before.and_then(|b| b.remote))
            .ok_or_else(|| required("remote"))?,
        private: kept(private, before, |b| b.private, false),
        hidden: kept(hidden, before, |b| b.hidden, false),
        description: description.unwrap_or_else(|| before.and_then(|b| b.description.clone())),
        pulp_labels: kept(labels, before, |b| b.pulp_labels.clone(), Default::default()),
    })
}

/// A field's value: as sent, else as it was (a partial update), else its default.
fn kept<T>(sent: Option<T>, before: Option<&Distribution>, old: impl Fn(&Distribution) -> T, default: T) -> T {
    sent.or_else(|| before.map(old)).unwrap_or(default)
}

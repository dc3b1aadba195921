//! Distributions: list, create, read, update, delete. Create, update and delete answer 202
//! with a task that already completed.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use serde_json::Value;

use super::errors::NO_URL_MATCH;
use super::{id_by_href, input, ops, render, Answer, ApiError, Ctx};
use crate::domain::RepoName;
use crate::services::{DistributionFilter, DistributionSpec, Serves};
use crate::store::{Distribution, RepositoryKind, ResourceRef};

fn describe(c: &Ctx<'_>, (d, kind): &(Distribution, Option<RepositoryKind>)) -> Value {
    render::distribution(d, *kind, &c.host)
}

pub(super) async fn list(c: &Ctx<'_>) -> Answer {
    let repository = c.q_set("repository").map(|r| {
        [RepositoryKind::Mirror, RepositoryKind::Push]
            .into_iter()
            .find_map(|k| id_by_href(r, |id| render::repo_href(id, k)).map(|id| (id, k)))
    });
    let mut names = c.names(render::dist_href, |id| {
        format!("prn:container.containerdistribution:{id}")
    });
    names.labels = c.labels()?;
    let f = DistributionFilter {
        names,
        base_path: c.q_owned("base_path"),
        base_path_in: c.q_list("base_path__in"),
        base_path_contains: c.q_owned("base_path__contains"),
        base_path_icontains: c.q_owned("base_path__icontains"),
        namespace_name: c.q_owned("namespace__name"),
        repository,
        pull_through: false,
    };
    let page = c.paging()?;
    let listing = c.catalog().distributions(&f, page).await?;
    c.page(page, listing.map(|d| describe(c, &d)))
}

pub(super) async fn read(c: &Ctx<'_>) -> Answer {
    let d = c.catalog().distribution(c.id()).await?;
    c.ok(describe(c, &d))
}

pub(super) async fn delete(c: &Ctx<'_>) -> Answer {
    let id = c.id();
    c.manage().delete_distribution_for(&c.who, id).await?;
    c.done(
        "pulpcore.app.tasks.base.general_delete",
        ResourceRef::Distribution { id },
    )
    .await
}

/// Reads a distribution body into a spec, starting from `before` for partial updates.
fn dist_spec(c: &Ctx<'_>, before: Option<&Distribution>, partial: bool) -> Result<DistributionSpec, ApiError> {
    let mut i = c.input(partial)?;
    let name = i.string("name", true);
    let base_path = i.string("base_path", true);
    let repository = i.opt_string("repository", true);
    let version = i.opt_string("repository_version", true);
    let private = i.boolean("private");
    let description = i.opt_string("description", false);
    let labels = i.labels("pulp_labels");
    if let Some(Some(_)) = i.opt_string("remote", true) {
        i.err(
            "remote",
            "A container distribution takes no remote; pull-through caches are made at /pulp/api/v3/distributions/container/pull-through/.",
        );
    }
    let base_path = match base_path {
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
    if matches!((&repository, &version), (Some(Some(_)), Some(Some(_)))) {
        i.err(
            "non_field_errors",
            "Only one of the attributes 'repository' and 'repository_version' may be used simultaneously.",
        );
    }
    let mut serves = None;
    if let Some(r) = &repository {
        serves = Some(match r {
            None => Serves::Nothing,
            Some(h) => {
                let m = ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/", h)
                    .or_else(|| ops::parse_href("/pulp/api/v3/repositories/container/container-push/{id}/", h));
                match m {
                    Some((Some(id), _)) => Serves::Latest(id),
                    _ => {
                        i.err("repository", NO_URL_MATCH);
                        Serves::Nothing
                    }
                }
            }
        });
    }
    if let Some(v) = &version {
        match v {
            None => {
                if serves.is_none() {
                    serves = Some(Serves::Nothing);
                }
            }
            Some(h) => {
                let m = ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/versions/{n}/", h).or_else(
                    || {
                        ops::parse_href(
                            "/pulp/api/v3/repositories/container/container-push/{id}/versions/{n}/",
                            h,
                        )
                    },
                );
                match m {
                    Some((Some(id), Some(n))) => serves = Some(Serves::Version(id, n)),
                    _ => i.err("repository_version", NO_URL_MATCH),
                }
            }
        }
    }
    i.finish()?;
    let keep = |d: &Distribution| match (d.repository, d.version) {
        (Some(id), None) => Serves::Latest(id),
        (Some(id), Some(n)) => Serves::Version(id, n),
        _ => Serves::Nothing,
    };
    Ok(DistributionSpec {
        name: name.or_else(|| before.map(|b| b.name.clone())).unwrap_or_default(),
        base_path: match base_path.or_else(|| before.map(|b| b.base_path.clone())) {
            Some(p) => p,
            None => return Err(ApiError::field("base_path", input::REQUIRED)),
        },
        serves: serves
            .or_else(|| if partial { before.map(keep) } else { None })
            .unwrap_or(Serves::Nothing),
        private: private
            .or_else(|| if partial { before.map(|b| b.private) } else { None })
            .unwrap_or(false),
        description: match description {
            Some(d) => d,
            None if partial => before.and_then(|b| b.description.clone()),
            None => None,
        },
        pulp_labels: labels
            .or_else(|| {
                if partial {
                    before.map(|b| b.pulp_labels.clone())
                } else {
                    None
                }
            })
            .unwrap_or_default(),
    })
}

pub(super) async fn create(c: &Ctx<'_>) -> Answer {
    let spec = dist_spec(c, None, false)?;
    let d = c.manage().create_distribution_for(&c.who, spec).await?;
    let r = ResourceRef::Distribution { id: d.id };
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
    let before = c.manage().container_distribution(id).await?;
    let spec = dist_spec(c, Some(&before), partial)?;
    c.manage().update_distribution_for(&c.who, id, |_| Ok(spec)).await?;
    c.done(
        "pulpcore.app.tasks.base.general_update",
        ResourceRef::Distribution { id },
    )
    .await
}

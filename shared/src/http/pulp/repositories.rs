//! Repositories (mirror and push): list, create, read, update, delete, sync, and the content
//! operations that make a new version (add/remove, copy tags or manifests, tag, untag,
//! remove an image).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use std::collections::BTreeMap;

use http::StatusCode;
use uuid::Uuid;

use super::errors::{json_response, NO_URL_MATCH};
use super::input::{self, Input};
use super::ops::{self, OpId};
use super::{content, render, versions, Answer, ApiError, Ctx};
use crate::domain::{Digest, Tag};
use crate::services::{CopySelection, CopySource};
use crate::store::{Repository, RepositoryKind, RepositoryVersion, ResourceRef};

pub(super) async fn list(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let mut names = c.names(|id| render::repo_href(id, kind), |id| render::repo_prn(id, kind));
    names.labels = c.labels()?;
    let page = c.paging()?;
    let listing = c.catalog().repositories(kind, &names, page).await?;
    c.page(page, listing.map(|r| render::repository(&r)))
}

pub(super) async fn read(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    c.ok(render::repository(&c.manage().repository(c.id(), kind).await?))
}

/// A remote named by href in `field` (`Some(None)`: set to null).
pub(super) fn remote_ref(i: &mut Input, field: &str) -> Option<Option<Uuid>> {
    match i.opt_string(field, true) {
        None => None,
        Some(None) => Some(None),
        Some(Some(h)) => match ops::parse_href("/pulp/api/v3/remotes/container/container/{id}/", &h) {
            Some((Some(id), _)) => Some(Some(id)),
            _ => {
                i.err(field, NO_URL_MATCH);
                None
            }
        },
    }
}

/// The repository fields of a create or update body.
struct RepoInput {
    name: Option<String>,
    description: Option<Option<String>>,
    retain: Option<Option<u64>>,
    remote: Option<Option<Uuid>>,
    labels: Option<BTreeMap<String, String>>,
}

fn repo_input(c: &Ctx<'_>, partial: bool, kind: RepositoryKind) -> Result<RepoInput, ApiError> {
    let mut i = c.input(partial)?;
    let name = i.string("name", true);
    if let Some(n) = &name {
        if n.len() > 255 {
            i.err("name", "Ensure this field has no more than 255 characters.");
        }
    }
    let description = i.opt_string("description", false);
    let retain = i.opt_uint("retain_repo_versions", 1);
    let remote = if kind == RepositoryKind::Mirror {
        remote_ref(&mut i, "remote")
    } else {
        None
    };
    let labels = i.labels("pulp_labels");
    i.finish()?;
    Ok(RepoInput {
        name,
        description,
        retain,
        remote,
        labels,
    })
}

pub(super) async fn create(c: &Ctx<'_>) -> Answer {
    let inp = repo_input(c, false, RepositoryKind::Mirror)?;
    let mut r = Repository::new(&inp.name.unwrap_or_default(), RepositoryKind::Mirror);
    r.description = inp.description.flatten();
    r.retain_repo_versions = inp.retain.flatten();
    r.remote = inp.remote.flatten();
    r.pulp_labels = inp.labels.unwrap_or_default();
    let r = c.manage().create_repository_for(&c.who, r).await?;
    Ok(json_response(StatusCode::CREATED, &render::repository(&r)))
}

pub(super) async fn update(c: &Ctx<'_>, kind: RepositoryKind, partial: bool) -> Answer {
    let id = c.id();
    c.manage().repository(id, kind).await?;
    let inp = repo_input(c, partial, kind)?;
    c.manage()
        .update_repository(id, |r| {
            if let Some(n) = &inp.name {
                r.name = n.clone();
            }
            if let Some(d) = &inp.description {
                r.description = d.clone();
            } else if !partial {
                r.description = None;
            }
            if let Some(x) = inp.retain {
                r.retain_repo_versions = x;
            }
            if let Some(x) = inp.remote {
                r.remote = x;
            }
            if let Some(l) = &inp.labels {
                r.pulp_labels = l.clone();
            }
            Ok(())
        })
        .await?;
    c.done(
        "pulpcore.app.tasks.base.general_update",
        ResourceRef::Repository { id, kind },
    )
    .await
}

pub(super) async fn delete(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let id = c.id();
    c.manage().repository(id, kind).await?;
    c.manage().delete_repository(id).await?;
    c.done(
        "pulpcore.app.tasks.base.general_delete",
        ResourceRef::Repository { id, kind },
    )
    .await
}

pub(super) async fn sync(c: &Ctx<'_>) -> Answer {
    let repo = c.manage().repository(c.id(), RepositoryKind::Mirror).await?;
    let mut i = c.input(false)?;
    let remote = remote_ref(&mut i, "remote");
    let mirror = i.boolean("mirror").unwrap_or(false);
    let signed_only = i.boolean("signed_only").unwrap_or(false);
    i.finish()?;
    let remote = match remote.flatten().or(repo.remote) {
        Some(r) => r,
        None => {
            return Err(ApiError::field(
                "remote",
                "A remote must be specified, or the repository must have a default remote.",
            ))
        }
    };
    let t = c.manage().sync_for(&c.who, &repo, remote, mirror, signed_only).await?;
    c.task(&t)
}

/// `copy_tags` (`names`) and `copy_manifests` (`digests`, `media_types`): adds the selected
/// tags or manifests of a source version (`source_repository`'s latest, or
/// `source_repository_version`), with everything they reference, as one new version.
pub(super) async fn copy(c: &Ctx<'_>, tags: bool) -> Answer {
    let repo = c.manage().repository(c.id(), RepositoryKind::Mirror).await?;
    let mut i = c.input(false)?;
    let source_repo = i.opt_string("source_repository", true).flatten();
    let source_version = i.opt_string("source_repository_version", true).flatten();
    let selection = if tags {
        CopySelection::Tags {
            names: i.opt_str_list("names").flatten(),
        }
    } else {
        CopySelection::Manifests {
            digests: i.opt_str_list("digests").flatten(),
            media_types: i.opt_str_list("media_types").flatten(),
        }
    };
    match (&source_repo, &source_version) {
        (None, None) => i.err(
            "non_field_errors",
            "Either the 'repository' or 'repository_version' needs to be specified",
        ),
        (Some(_), Some(_)) => i.err(
            "non_field_errors",
            "Either the 'repository' or 'repository_version' need to be specified but not both.",
        ),
        _ => {}
    }
    i.finish()?;
    let source = match (source_repo, source_version) {
        (Some(h), None) => match ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/", &h) {
            Some((Some(id), _)) => CopySource::Latest(id),
            _ => return Err(ApiError::field("source_repository", NO_URL_MATCH)),
        },
        (_, Some(h)) => {
            let (id, n) = versions::parse_ref("source_repository_version", &h)?;
            CopySource::Version(id, n)
        }
        (None, None) => return Err(ApiError::not_found()),
    };
    let v = c.manage().copy_for(&c.who, &repo, source, selection).await?;
    modified(c, "pulp_container.app.tasks.recursive_add_content", &repo, v).await
}

/// The task answer for a modify operation that made (or did not make) a version.
async fn modified(c: &Ctx<'_>, name: &str, repo: &Repository, v: Option<RepositoryVersion>) -> Answer {
    let created: Vec<ResourceRef> = v
        .iter()
        .map(|v| ResourceRef::RepositoryVersion {
            repository: repo.id,
            kind: repo.kind,
            number: v.number,
        })
        .collect();
    let t = c
        .manage()
        .completed_task(
            name,
            vec![ResourceRef::Repository {
                id: repo.id,
                kind: repo.kind,
            }],
            created.clone(),
            created.into_iter().next(),
        )
        .await?;
    c.task(&t)
}

pub(super) async fn modify(c: &Ctx<'_>, add: bool) -> Answer {
    let repo = c.manage().repository(c.id(), RepositoryKind::Mirror).await?;
    let mut i = c.input(false)?;
    let units = i
        .opt_str_list("content_units")
        .or_else(|| {
            i.opt_str_list(if add {
                "add_content_units"
            } else {
                "remove_content_units"
            })
        })
        .flatten();
    let Some(units) = units else {
        i.err("content_units", input::REQUIRED);
        i.finish()?;
        return Err(ApiError::not_found());
    };
    i.finish()?;
    let keys = if !add && units.iter().any(|u| u == "*") {
        None
    } else {
        let refs = content::refs(&units);
        Some(c.manage().content_keys("content_units", &refs).await?)
    };
    let v = if add {
        c.manage().add(&repo, keys.unwrap_or_default()).await?
    } else {
        c.manage().remove(&repo, keys).await?
    };
    modified(c, "pulpcore.app.tasks.repository.add_and_remove", &repo, v).await
}

pub(super) async fn tag_modify(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let mut i = c.input(false)?;
    let digest = |i: &mut Input| -> Option<Digest> {
        let d = i.string("digest", true)?;
        match Digest::parse(&d) {
            Ok(d) => Some(d),
            Err(e) => {
                i.err("digest", e.to_string());
                None
            }
        }
    };
    let tag = |i: &mut Input| -> Option<Tag> {
        let t = i.string("tag", true)?;
        match Tag::parse(&t) {
            Ok(t) => Some(t),
            Err(e) => {
                i.err("tag", e.to_string());
                None
            }
        }
    };
    let (v, name) = match c.m.op.id {
        OpId::PushTag | OpId::RepoTag => {
            let (t, d) = (tag(&mut i), digest(&mut i));
            i.finish()?;
            let (Some(t), Some(d)) = (t, d) else {
                return Err(ApiError::not_found());
            };
            (c.manage().tag(&repo, t, d).await?, "pulp_container.app.tasks.tag_image")
        }
        OpId::PushUntag | OpId::RepoUntag => {
            let t = tag(&mut i);
            i.finish()?;
            let Some(t) = t else { return Err(ApiError::not_found()) };
            (
                c.manage().untag(&repo, t).await?,
                "pulp_container.app.tasks.untag_image",
            )
        }
        _ => {
            let d = digest(&mut i);
            i.finish()?;
            let Some(d) = d else { return Err(ApiError::not_found()) };
            (
                c.manage().remove_image(&repo, &d).await?,
                "pulp_container.app.tasks.recursive_remove_content",
            )
        }
    };
    modified(c, name, &repo, v).await
}

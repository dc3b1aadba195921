//! Repository versions: list (with number and content filters), read, delete, repair.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use uuid::Uuid;

use super::errors::NO_URL_MATCH;
use super::{content, ops, render, Answer, ApiError, Ctx};
use crate::services::VersionFilter;
use crate::store::RepositoryKind;

/// A repository version named by href in `field` (either repository type).
pub(super) fn parse_ref(field: &str, href: &str) -> Result<(Uuid, u64), ApiError> {
    let m = ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/versions/{n}/", href).or_else(|| {
        ops::parse_href(
            "/pulp/api/v3/repositories/container/container-push/{id}/versions/{n}/",
            href,
        )
    });
    match m {
        Some((Some(id), Some(n))) => Ok((id, n)),
        _ => Err(ApiError::field(field, NO_URL_MATCH)),
    }
}

pub(super) async fn list(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let num = |k: &str| -> Result<Option<u64>, ApiError> {
        match c.q(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::field(k, "Enter a number.")),
        }
    };
    let mut f = VersionFilter {
        number: num("number")?,
        number_gt: num("number__gt")?,
        number_gte: num("number__gte")?,
        number_lt: num("number__lt")?,
        number_lte: num("number__lte")?,
        content: None,
        oldest_first: c.q("ordering").is_some_and(|o| o == "number" || o == "pulp_created"),
    };
    if let Some(h) = c.q_set("content") {
        match content::id_of(h) {
            Some(id) => f.content = Some(id),
            None => return Err(ApiError::field("content", "Invalid hyperlink.")),
        }
    }
    let page = c.paging()?;
    let listing = c.catalog().versions(&repo, &f, page).await?;
    c.page(page, listing.map(|v| render::version(&repo, &v)))
}

pub(super) async fn read(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let v = c.manage().version(&repo, c.m.n.unwrap_or(u64::MAX)).await?;
    c.ok(render::version(&repo, &v))
}

pub(super) async fn delete(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let t = c.manage().delete_version(&repo, c.m.n.unwrap_or(u64::MAX)).await?;
    c.task(&t)
}

/// `repair/`: `{"verify_checksums": bool}` (default true); answers with the repair's task.
pub(super) async fn repair(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let mut i = c.input(false)?;
    let verify_checksums = i.boolean("verify_checksums").unwrap_or(true);
    i.finish()?;
    let t = c
        .manage()
        .repair_version(&repo, c.m.n.unwrap_or(u64::MAX), verify_checksums)
        .await?;
    c.task(&t)
}

//! Content units (blobs, manifests, tags, signatures): list with filters, read.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use serde_json::Value;
use uuid::Uuid;

use super::{ids_by_href, ops, render, versions, Answer, ApiError, Ctx};
use crate::domain::{ContentKey, ContentType};
use crate::services::ContentFilter;
use crate::store::ContentUnit;

/// The content id in a content href of any type.
pub(super) fn id_of(href: &str) -> Option<Uuid> {
    for ty in ContentType::ALL {
        let pat = format!("/pulp/api/v3/content/container/{}/{{id}}/", render::content_path(ty));
        if let Some((Some(id), _)) = ops::parse_href(&pat, href) {
            return Some(id);
        }
    }
    None
}

/// Content hrefs with the ids they name (none for one of another shape).
pub(super) fn refs(hrefs: &[String]) -> Vec<(String, Option<Uuid>)> {
    hrefs.iter().map(|h| (h.clone(), id_of(h))).collect()
}

fn describe(u: &ContentUnit) -> Value {
    match &u.key {
        ContentKey::Blob(_) => render::blob(&u.key, u.blob.as_ref().map(|r| &r.created)),
        ContentKey::Manifest(_) => render::manifest(&u.key, u.manifest.as_ref()),
        ContentKey::Tag { .. } => render::tag(&u.key),
        ContentKey::Signature(_) => render::signature(&u.key),
    }
}

/// A version named in the query parameter `field`, checked to exist.
async fn version(c: &Ctx<'_>, field: &'static str) -> Result<Option<(Uuid, u64)>, ApiError> {
    let Some(h) = c.q_set(field) else { return Ok(None) };
    let (id, n) = versions::parse_ref(field, h)?;
    let (repo, n) = c.manage().version_ref(field, id, n).await?;
    Ok(Some((repo.id, n)))
}

pub(super) async fn list(c: &Ctx<'_>, ty: ContentType) -> Answer {
    let mut f = ContentFilter::new(ty);
    f.in_version = version(c, "repository_version").await?;
    f.added_in = version(c, "repository_version_added").await?;
    f.removed_in = version(c, "repository_version_removed").await?;
    f.digests = match ty {
        // a list (`digest=a,b`), as pulp_container's tag filter has it
        ContentType::Tag => c.q_list("digest"),
        _ => c.q_any("digest"),
    };
    f.names = c.q_any("name");
    f.media_types = c.q_list("media_type");
    let path = render::content_path(ty);
    f.ids = c
        .q_list("pulp_href__in")
        .map(|hs| ids_by_href(&hs, |id| format!("{}content/container/{path}/{id}/", render::API)));
    let page = c.paging()?;
    let listing = c.catalog().content(&f, page).await?;
    c.page(page, listing.map(|u| describe(&u)))
}

pub(super) async fn read(c: &Ctx<'_>, ty: ContentType) -> Answer {
    let u = c.catalog().content_unit(c.id(), ty).await?;
    c.ok(describe(&u))
}

//! Content units (blobs, manifests, tags, signatures): list with filters, read; and Pulp's
//! generic content list of every type together.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use serde_json::Value;
use uuid::Uuid;

use super::{ids_by_href, ops, params, render, versions, Answer, ApiError, Ctx};
use crate::domain::{ContentKey, ContentType};
use crate::services::{AnyContentFilter, ContentFilter};
use crate::store::{ContentOrder, ContentUnit};

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
    let created = u.created.as_ref();
    match &u.key {
        ContentKey::Blob(_) => render::blob(&u.key, created),
        ContentKey::Manifest(_) => render::manifest(&u.key, u.manifest.as_ref()),
        ContentKey::Tag { .. } => render::tag(&u.key, created),
        ContentKey::Signature(_) => render::signature(&u.key, created),
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
    if let Some(k) = UNSUPPORTED
        .into_iter()
        .find(|k| *k != "pulp_label_select" && c.q(k).is_some())
    {
        return Err(ApiError::field(k, "Berth does not support this filter."));
    }
    let mut f = ContentFilter::new(ty);
    f.labels = c.labels()?;
    if ty == ContentType::Manifest {
        f.nothing = c.boolean("is_bootable")? == Some(true) || c.boolean("is_flatpak")? == Some(true);
    }
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
    if let Some(ps) = c.q_list("prn__in") {
        let prns = pks("prn__in", &ps, true)?;
        f.ids = Some(match f.ids {
            Some(ids) => ids.into_iter().filter(|i| prns.contains(i)).collect(),
            None => prns,
        });
    }
    let page = c.paging()?;
    let listing = c.catalog().content(&f, page).await?;
    c.page(page, listing.map(|u| describe(&u)))
}

pub(super) async fn read(c: &Ctx<'_>, ty: ContentType) -> Answer {
    let u = c.catalog().content_unit(c.id(), ty).await?;
    c.ok(describe(&u))
}

/// Filters of pulpcore's generic content list that Berth does not serve: refused, never
/// ignored (`orphaned_for` would read every repository, whatever the page).
const UNSUPPORTED: [&str; 3] = ["orphaned_for", "pulp_label_select", "q"];

fn not_a_choice(field: &str, v: &str) -> ApiError {
    ApiError::field(
        field,
        format!("Select a valid choice. {v} is not one of the available choices."),
    )
}

/// The types `pulp_type` and `pulp_type__in` select (both must hold), by Pulp's names; the
/// types of pulpcore and pulp_file are choices too, and select nothing here.
fn pulp_types(c: &Ctx<'_>) -> Result<Option<Vec<ContentType>>, ApiError> {
    let parse = |field: &str, v: &str| -> Result<Option<ContentType>, ApiError> {
        match ContentType::ALL.into_iter().find(|t| t.pulp_name() == v) {
            Some(t) => Ok(Some(t)),
            None if params::ALL_PULP_TYPES.contains(&v) => Ok(None),
            None => Err(not_a_choice(field, v)),
        }
    };
    let one = match c.q_set("pulp_type") {
        Some(v) => Some(parse("pulp_type", v)?.into_iter().collect::<Vec<_>>()),
        None => None,
    };
    let any = match c.q_list("pulp_type__in") {
        Some(vs) => {
            let mut ts = Vec::new();
            for v in &vs {
                ts.extend(parse("pulp_type__in", v)?);
            }
            Some(ts)
        }
        None => None,
    };
    Ok(match (one, any) {
        (Some(a), Some(b)) => Some(a.into_iter().filter(|t| b.contains(t)).collect()),
        (a, b) => a.or(b),
    })
}

/// `ordering`: by id (`pk`, `-pk`; the first value decides, ids being unique), else by type.
fn ordering(c: &Ctx<'_>) -> Result<ContentOrder, ApiError> {
    let mut order = None;
    for v in c.q_list("ordering").unwrap_or_default() {
        let o = match v.as_str() {
            "pk" => ContentOrder::Id { descending: false },
            "-pk" => ContentOrder::Id { descending: true },
            _ => return Err(not_a_choice("ordering", &v)),
        };
        order.get_or_insert(o);
    }
    Ok(order.unwrap_or_default())
}

/// The ids `pulp_href__in` and `prn__in` name, as pulpcore reads them: an href's last path
/// segment, or a PRN's last part (`prn:<model>:<id>`), whatever type it names.
fn pks(field: &str, values: &[String], only_prn: bool) -> Result<Vec<Uuid>, ApiError> {
    values
        .iter()
        .map(|v| {
            let pk = if let Some(rest) = v.strip_prefix("prn:") {
                match rest.split(':').collect::<Vec<_>>()[..] {
                    [_, pk] => Uuid::parse_str(pk).ok(),
                    _ => None,
                }
                .ok_or_else(|| format!("PRN not valid: {v}"))
            } else if only_prn {
                Err(format!("Not a valid PRN: {v}, must start with 'prn:'"))
            } else {
                let path = v.split(['?', '#']).next().unwrap_or("");
                let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                Uuid::parse_str(last).map_err(|_| format!("URI not valid: {v}"))
            };
            pk.map_err(|msg| ApiError::field(field, msg))
        })
        .collect()
}

/// Pulp's generic content list (`GET /content/`): units of every type together, with the
/// version filters of the typed lists, the type and id filters, and `ordering` by id.
pub(super) async fn list_any(c: &Ctx<'_>) -> Answer {
    if let Some(k) = UNSUPPORTED.into_iter().find(|k| c.q(k).is_some()) {
        return Err(ApiError::field(k, "Berth does not support this filter."));
    }
    let mut f = AnyContentFilter {
        types: pulp_types(c)?,
        in_version: version(c, "repository_version").await?,
        added_in: version(c, "repository_version_added").await?,
        removed_in: version(c, "repository_version_removed").await?,
        ids: Vec::new(),
        order: ordering(c)?,
    };
    if let Some(hs) = c.q_list("pulp_href__in") {
        f.ids.push(pks("pulp_href__in", &hs, false)?);
    }
    if let Some(ps) = c.q_list("prn__in") {
        f.ids.push(pks("prn__in", &ps, true)?);
    }
    if let Some(ids) = c.q_list("pulp_id__in") {
        let ids = ids
            .iter()
            .map(|i| Uuid::parse_str(i).map_err(|_| ApiError::field("pulp_id__in", "Enter a valid UUID.")))
            .collect::<Result<_, _>>()?;
        f.ids.push(ids);
    }
    let page = c.paging()?;
    let listing = c.catalog().any_content(&f, page).await?;
    c.page(page, listing.map(|u| render::any_content(&u.key, u.created.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_pulp_types_are_the_content_types() {
        let names: Vec<&str> = ContentType::ALL.iter().map(|t| t.pulp_name()).collect();
        assert_eq!(params::PULP_TYPES, &names[..]);
        assert!(names.iter().all(|n| params::ALL_PULP_TYPES.contains(n)));
    }

    #[test]
    fn pks_read_hrefs_and_prns_as_pulpcore_does() {
        let id = Uuid::new_v4();
        let given = [
            format!("/pulp/api/v3/content/container/tags/{id}/"),
            format!("http://h:1/pulp/api/v3/content/container/blobs/{id}/?x=1"),
            format!("prn:container.tag:{id}"),
        ];
        assert_eq!(pks("f", &given, false).unwrap(), vec![id; 3]);
        assert!(pks("f", &given[..1], true).is_err());
        assert_eq!(pks("f", &given[2..], true).unwrap(), vec![id]);
        for bad in ["/pulp/api/v3/content/", "prn:x", "prn:a:b:c", "nonsense"] {
            assert!(pks("f", &[bad.to_owned()], false).is_err(), "{bad}");
        }
    }
}

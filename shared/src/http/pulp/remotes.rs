//! Remotes: list, create, read, update, delete, for both of Pulp's kinds: container remotes
//! (`/remotes/container/container/`) and pull-through remotes
//! (`/remotes/container/pull-through/`), which share every network field and differ in
//! their filters (tags, or upstream repository names) and policies. The URL shape and filter
//! checks are the services' and the domain's; this module reads the body and words the
//! refusals.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use http::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::errors::{json_response, message};
use super::{render, Answer, ApiError, Ctx};
use crate::domain::filter::{NameFilter, TagFilter};
use crate::domain::RepoName;
use crate::services::{check_url_shape, RemoteFilter};
use crate::store::{Policy, Remote, RemoteHeaders, RemoteKind, ResourceRef};

fn describe(r: &Remote) -> Value {
    match r.kind {
        RemoteKind::Container => render::remote(r),
        RemoteKind::PullThrough => render::pull_through_remote(r),
    }
}

fn reference(kind: RemoteKind, id: Uuid) -> ResourceRef {
    match kind {
        RemoteKind::Container => ResourceRef::Remote { id },
        RemoteKind::PullThrough => ResourceRef::PullThroughRemote { id },
    }
}

pub(super) async fn list(c: &Ctx<'_>, kind: RemoteKind) -> Answer {
    let mut names = match kind {
        RemoteKind::Container => c.names(render::remote_href, |id| format!("prn:container.containerremote:{id}")),
        RemoteKind::PullThrough => c.names(render::pt_remote_href, render::pt_remote_prn),
    };
    names.labels = c.labels()?;
    let f = RemoteFilter {
        names,
        updated: c.time_range("pulp_last_updated")?,
        kind,
    };
    let page = c.paging()?;
    let listing = c.catalog().remotes(&f, page).await?;
    c.page(page, listing.map(|r| describe(&r)))
}

pub(super) async fn read(c: &Ctx<'_>, kind: RemoteKind) -> Answer {
    c.ok(describe(&c.manage().remote_of(c.id(), kind).await?))
}

pub(super) async fn delete(c: &Ctx<'_>, kind: RemoteKind) -> Answer {
    let id = c.id();
    c.manage().delete_remote_of(id, kind).await?;
    c.done("pulpcore.app.tasks.base.general_delete", reference(kind, id))
        .await
}

pub(super) async fn create(c: &Ctx<'_>, kind: RemoteKind) -> Answer {
    // the required fields replace these, or the body is refused; a pull-through remote has no
    // upstream name, and keeps the placeholder
    let placeholder = RepoName::parse("upstream").map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut r = Remote::new("", "", placeholder);
    r.kind = kind;
    if kind == RemoteKind::PullThrough {
        r.policy = Policy::OnDemand;
    }
    apply_remote(c, &mut r, false)?;
    let r = match kind {
        RemoteKind::Container => c.manage().create_remote_for(&c.who, r).await?,
        RemoteKind::PullThrough => c.manage().create_pull_through_remote_for(&c.who, r).await?,
    };
    Ok(json_response(StatusCode::CREATED, &describe(&r)))
}

pub(super) async fn update(c: &Ctx<'_>, kind: RemoteKind, partial: bool) -> Answer {
    let id = c.id();
    let mut probe = c.manage().remote_of(id, kind).await?;
    apply_remote(c, &mut probe, partial)?;
    c.manage()
        .update_remote(id, |r| {
            let (created, rid) = (r.created, r.id);
            *r = probe.clone();
            r.created = created;
            r.id = rid;
            Ok(())
        })
        .await?;
    c.done("pulpcore.app.tasks.base.general_update", reference(kind, id))
        .await
}

/// Applies a create/update body to a remote; `partial` leaves absent fields alone.
fn apply_remote(c: &Ctx<'_>, r: &mut Remote, partial: bool) -> Result<(), ApiError> {
    let mut i = c.input(partial)?;
    if let Some(n) = i.string("name", true) {
        if n.len() > 255 {
            i.err("name", "Ensure this field has no more than 255 characters.");
        }
        r.name = n;
    }
    if let Some(u) = i.string("url", true) {
        if let Err(e) = check_url_shape(&u) {
            i.err("url", message(&e));
        }
        r.url = u;
    }
    match r.kind {
        RemoteKind::Container => container_fields(&mut i, r),
        RemoteKind::PullThrough => pull_through_fields(&mut i, r),
    }
    macro_rules! opt {
        ($field:ident, $getter:expr) => {
            if let Some(v) = $getter {
                r.$field = v;
            }
        };
    }
    opt!(username, i.opt_string("username", true));
    opt!(password, i.opt_string("password", true));
    opt!(ca_cert, i.opt_string("ca_cert", true));
    opt!(client_cert, i.opt_string("client_cert", true));
    opt!(client_key, i.opt_string("client_key", true));
    opt!(proxy_url, i.opt_string("proxy_url", true));
    opt!(proxy_username, i.opt_string("proxy_username", true));
    opt!(proxy_password, i.opt_string("proxy_password", true));
    opt!(download_concurrency, i.opt_uint("download_concurrency", 1));
    opt!(rate_limit, i.opt_uint("rate_limit", 0));
    opt!(max_retries, i.opt_uint("max_retries", 0));
    opt!(total_timeout, i.opt_float("total_timeout"));
    opt!(connect_timeout, i.opt_float("connect_timeout"));
    opt!(sock_connect_timeout, i.opt_float("sock_connect_timeout"));
    opt!(sock_read_timeout, i.opt_float("sock_read_timeout"));
    if let Some(p) = &r.proxy_url {
        if let Err(e) = check_url_shape(p) {
            i.err("proxy_url", message(&e));
        }
    }
    if let Some(b) = i.boolean("tls_validation") {
        r.tls_validation = b;
    }
    if let Some(h) = i.raw("headers") {
        match h {
            Value::Null => r.headers = None,
            h => match RemoteHeaders::from_json(&h) {
                Ok(h) => r.headers = Some(h),
                Err(e) => i.err("headers", e),
            },
        }
    }
    if let Some(l) = i.labels("pulp_labels") {
        r.pulp_labels = l;
    }
    i.finish()
}

/// A container remote's own fields: its upstream repository, tag filters (also as
/// `include_tags` / `exclude_tags`), any policy, and a sigstore.
fn container_fields(i: &mut super::input::Input, r: &mut Remote) {
    if let Some(u) = i.string("upstream_name", true) {
        match RepoName::parse(&u) {
            Ok(u) => r.upstream_name = u,
            Err(e) => i.err("upstream_name", e.to_string()),
        }
    }
    let includes = i.opt_str_list("includes");
    let include_tags = i.opt_str_list("include_tags");
    let excludes = i.opt_str_list("excludes");
    let exclude_tags = i.opt_str_list("exclude_tags");
    let merge = |a: Option<Option<Vec<String>>>, b: Option<Option<Vec<String>>>| -> Option<Option<Vec<String>>> {
        match (a, b) {
            (None, None) => None,
            (a, b) => {
                let mut v: Vec<String> = a.flatten().unwrap_or_default();
                for x in b.flatten().unwrap_or_default() {
                    if !v.contains(&x) {
                        v.push(x);
                    }
                }
                Some((!v.is_empty()).then_some(v))
            }
        }
    };
    if let Some(x) = merge(includes, include_tags) {
        r.includes = x;
    }
    if let Some(x) = merge(excludes, exclude_tags) {
        r.excludes = x;
    }
    if let Err(e) = TagFilter::new(
        r.includes.as_deref().unwrap_or(&[]),
        r.excludes.as_deref().unwrap_or(&[]),
    ) {
        let field = if i.has("includes") {
            "includes"
        } else if i.has("include_tags") {
            "include_tags"
        } else if i.has("excludes") {
            "excludes"
        } else {
            "exclude_tags"
        };
        i.err(field, e.to_string());
    }
    if let Some(p) = i.string("policy", false) {
        match Policy::parse(&p) {
            Some(p) => r.policy = p,
            None => i.err("policy", format!("\"{p}\" is not a valid choice.")),
        }
    }
    if let Some(s) = i.opt_string("sigstore", true) {
        if let Some(u) = &s {
            if let Err(e) = check_url_shape(u) {
                i.err("sigstore", message(&e));
            }
        }
        r.sigstore = s;
    }
}

/// A pull-through remote's own fields: wildcard filters over upstream repository names, and
/// the one policy it has (`on_demand`).
fn pull_through_fields(i: &mut super::input::Input, r: &mut Remote) {
    for (field, kept) in [("includes", &mut r.includes), ("excludes", &mut r.excludes)] {
        if let Some(v) = i.opt_str_list(field) {
            match NameFilter::new(v.as_deref().unwrap_or(&[]), &[]) {
                Ok(_) => *kept = v,
                Err(e) => i.err(field, e.to_string()),
            }
        }
    }
    if let Some(p) = i.string("policy", false) {
        match Policy::parse(&p) {
            Some(Policy::OnDemand) => r.policy = Policy::OnDemand,
            _ => i.err("policy", format!("\"{p}\" is not a valid choice.")),
        }
    }
}

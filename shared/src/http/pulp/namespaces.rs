//! Namespaces (`pulp_container/namespaces/`): list with Pulp's name lookups, read, create
//! (`201` with the namespace) and delete (`202` with a task, which has deleted every
//! distribution of the namespace and the push repositories they served, as Pulp's does).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use http::StatusCode;

use super::errors::json_response;
use super::{lookups, render, Answer, Ctx};
use crate::services::{NamespaceFilter, SortKey};

/// What Pulp's task of a namespace delete is called.
const DELETE_TASK: &str = "pulpcore.app.tasks.base.general_multi_delete";

/// The longest name a namespace may have (a base path's first segment is at most this long).
const NAME_MAX: usize = 255;

pub(super) async fn list(c: &Ctx<'_>) -> Answer {
    let f = NamespaceFilter {
        names: lookups::names(c, render::namespace_href, render::namespace_prn)?,
        sort: lookups::ordering(
            c,
            &[
                ("name", SortKey::Name),
                ("pulp_id", SortKey::Id),
                ("pulp_created", SortKey::Created),
                ("pulp_last_updated", SortKey::Updated),
            ],
        )?,
    };
    let page = c.paging()?;
    let listing = c.manage().namespaces(&f, page, c.scope.as_ref()).await?;
    c.page(page, listing.map(|ns| render::namespace(&ns)))
}

pub(super) async fn read(c: &Ctx<'_>) -> Answer {
    c.ok(render::namespace(&c.manage().namespace(c.id()).await?))
}

pub(super) async fn create(c: &Ctx<'_>) -> Answer {
    let mut i = c.input(false)?;
    let name = i.string("name", true);
    let labels = i.labels("pulp_labels");
    if name.as_ref().is_some_and(|n| n.chars().count() > NAME_MAX) {
        i.err(
            "name",
            format!("Ensure this field has no more than {NAME_MAX} characters."),
        );
    }
    i.finish()?;
    let ns = c
        .manage()
        .create_namespace_for(&c.who, &name.unwrap_or_default(), labels.unwrap_or_default())
        .await?;
    Ok(json_response(StatusCode::CREATED, &render::namespace(&ns)))
}

pub(super) async fn delete(c: &Ctx<'_>) -> Answer {
    let deleted = c.manage().delete_namespace(c.id()).await?;
    let t = c.manage().completed_task(DELETE_TASK, deleted, vec![], None).await?;
    c.task(&t)
}

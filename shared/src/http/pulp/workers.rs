//! Workers (`workers/`): the job runners' workers with their heartbeats, listed and read as
//! pulpcore has them, with its filters (name lookups, `last_heartbeat` lookups, `online`,
//! `missing`).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use super::{lookups, render, Answer, Ctx};
use crate::services::{SortKey, WorkerFilter};

pub(super) async fn list(c: &Ctx<'_>) -> Answer {
    let f = WorkerFilter {
        names: lookups::names(c, render::worker_href, render::worker_prn)?,
        last_heartbeat: lookups::times(c, "last_heartbeat")?,
        online: lookups::boolean(c, "online"),
        missing: lookups::boolean(c, "missing"),
        sort: lookups::ordering(
            c,
            &[
                ("name", SortKey::Name),
                ("pulp_id", SortKey::Id),
                ("pulp_created", SortKey::Created),
                ("pulp_last_updated", SortKey::Updated),
                ("last_heartbeat", SortKey::LastHeartbeat),
            ],
        )?,
    };
    let page = c.paging()?;
    let listing = c.manage().workers(&f, page).await?;
    c.page(page, listing.map(|w| render::worker(&w)))
}

pub(super) async fn read(c: &Ctx<'_>) -> Answer {
    c.ok(render::worker(&c.manage().worker(c.id()).await?))
}

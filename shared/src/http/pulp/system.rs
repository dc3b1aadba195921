//! What is not a resource: the status document and the orphan cleanup.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use chrono::Utc;
use serde_json::json;

use super::{content, render, Answer, Ctx, CONTAINER_VERSION, CORE_VERSION};

/// Starts an orphan cleanup: `orphan_protection_time` in minutes (Pulp's default, a day, when
/// absent or null), `content_hrefs` to consider only those units.
pub(super) async fn orphans_cleanup(c: &Ctx<'_>) -> Answer {
    let mut i = c.input(false)?;
    let minutes = i.opt_uint("orphan_protection_time", 0).flatten();
    let hrefs = i.opt_str_list("content_hrefs").flatten();
    i.finish()?;
    let only = match hrefs {
        None => None,
        Some(hrefs) => Some(c.manage().content_keys("content_hrefs", &content::refs(&hrefs)).await?),
    };
    let protection = minutes.map_or(crate::services::DEFAULT_PROTECTION, |m| {
        std::time::Duration::from_secs(m.saturating_mul(60))
    });
    let t = c.manage().orphan_cleanup(protection, only).await?;
    c.task(&t)
}

/// The status document; its online workers are those the worker list calls online.
pub(super) async fn status(c: &Ctx<'_>) -> Answer {
    let workers = c.manage().online_workers().await?;
    c.ok(json!({
        "versions": [
            {"component": "core", "version": CORE_VERSION, "package": "berth", "module": "berth", "domain_compatible": false},
            {"component": "container", "version": CONTAINER_VERSION, "package": "berth", "module": "berth", "domain_compatible": false}
        ],
        "online_workers": workers.iter().map(render::worker).collect::<Vec<_>>(),
        "online_api_apps": [{"name": "berth", "last_heartbeat": render::ts(&Utc::now())}],
        "online_content_apps": [{"name": "berth", "last_heartbeat": render::ts(&Utc::now())}],
        "database_connection": {"connected": true},
        "redis_connection": {"connected": false},
        "storage": null,
        "content_settings": {"content_origin": c.base_url, "content_path_prefix": "/pulp/content/"},
        "domain_enabled": false
    }))
}

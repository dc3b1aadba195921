//! The distributions (with their `podman pull` lines), the remotes, the tasks and one task.
//! A list of tasks, and a task, that may still change reload their content every few
//! seconds. Each handler parses, makes one [`Browse`] call and renders.

use uuid::Uuid;

use super::html::{self, w, Html};
use super::parts::{pager, progress, pull_line, running, state};
use super::{Query, Site, View};
use crate::domain::schedule::format_interval;
use crate::services::{served_version, Browse, Identity, ManageError};
use crate::store::{ResourceRef, ScheduledWork, Task};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// `/ui/distributions/`.
pub(super) async fn distributions(b: &Browse, who: &Identity, site: &Site, q: &Query) -> Result<View> {
    let page = q.page("offset")?;
    let list = b.distributions(who, page).await?;
    let mut h = Html::new();
    w!(h, "<h1>Distributions <span class=\"count\">{}</span></h1>", list.count);
    if list.items.is_empty() {
        h.raw("<p class=\"empty\">None you may see.</p>");
    } else {
        h.raw("<div class=\"scroll\"><table class=\"rows\"><thead><tr><th>Name</th><th>Serves</th>");
        h.raw("<th>Access</th><th>Pull</th></tr></thead><tbody>");
        for row in &list.items {
            let d = &row.distribution;
            w!(
                h,
                "<tr data-base-path=\"{}\"><td data-label=\"Name\"><strong>{}</strong>",
                d.base_path,
                d.name
            );
            if let Some(desc) = d.description.as_deref().filter(|x| !x.is_empty()) {
                w!(h, "<div class=\"desc\">{}</div>", desc);
            }
            h.raw("</td><td data-label=\"Serves\">");
            match &row.repo {
                Some(r) => {
                    w!(h, "<a href=\"/ui/repositories/{}/\">{}</a>, ", r.id, r.name);
                    match (d.version, served_version(d, r)) {
                        (None, Some(n)) => w!(h, "latest (version {})", n),
                        (_, Some(n)) => w!(h, "version {}", n),
                        _ => {}
                    }
                }
                None if d.repository.is_some() => {
                    h.raw("a repository you may not see");
                }
                None => {
                    h.raw("nothing");
                }
            }
            h.raw("</td><td data-label=\"Access\">");
            h.raw(if d.private { "private" } else { "public" });
            h.raw("</td><td data-label=\"Pull\">");
            pull_line(&mut h, site, d);
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table></div>");
    }
    pager(&mut h, q, "offset", page, &list);
    Ok(View {
        title: "Distributions".into(),
        section: "/ui/distributions/",
        main: h,
        live: false,
    })
}

/// `/ui/remotes/`.
pub(super) async fn remotes(b: &Browse, who: &Identity, q: &Query) -> Result<View> {
    let page = q.page("offset")?;
    let list = b.remotes(who, page).await?;
    let mut h = Html::new();
    w!(h, "<h1>Remotes <span class=\"count\">{}</span></h1>", list.count);
    if list.items.is_empty() {
        h.raw("<p class=\"empty\">None you may see.</p>");
    } else {
        h.raw("<div class=\"scroll\"><table class=\"rows\"><thead><tr><th>Name</th><th>Upstream</th>");
        h.raw("<th>Tags</th><th>Policy</th><th>Updated</th></tr></thead><tbody>");
        for r in &list.items {
            w!(
                h,
                "<tr data-remote=\"{}\"><td data-label=\"Name\"><strong>{}</strong></td>",
                r.name,
                r.name
            );
            w!(
                h,
                "<td data-label=\"Upstream\"><code>{}</code> <code>{}</code></td>",
                r.url,
                r.upstream_name
            );
            h.raw("<td data-label=\"Tags\">");
            let includes = r.includes.as_deref().unwrap_or_default();
            let excludes = r.excludes.as_deref().unwrap_or_default();
            if includes.is_empty() {
                h.raw("all");
            } else {
                w!(h, "<code>{}</code>", includes.join(" "));
            }
            if !excludes.is_empty() {
                w!(h, " but not <code>{}</code>", excludes.join(" "));
            }
            w!(h, "</td><td data-label=\"Policy\">{}</td>", r.policy.as_str());
            w!(h, "<td data-label=\"Updated\">{}</td></tr>", html::when(&r.updated));
        }
        h.raw("</tbody></table></div>");
    }
    pager(&mut h, q, "offset", page, &list);
    Ok(View {
        title: "Remotes".into(),
        section: "/ui/remotes/",
        main: h,
        live: false,
    })
}

pub(super) async fn schedules(b: &Browse, who: &Identity, q: &Query) -> Result<View> {
    let page = q.page("offset")?;
    let list = b.schedules(who, page).await?;
    let mut h = Html::new();
    w!(h, "<h1>Schedules <span class=\"count\">{}</span></h1>", list.count);
    if list.items.is_empty() {
        h.raw("<p class=\"empty\">None you may see.</p>");
    } else {
        h.raw("<div class=\"scroll\"><table class=\"rows\"><thead><tr><th>Name</th><th>Runs</th>");
        h.raw("<th>When</th><th>Next</th><th>Last task</th></tr></thead><tbody>");
        for row in &list.items {
            let s = &row.schedule;
            w!(
                h,
                "<tr data-schedule=\"{}\"><td data-label=\"Name\"><strong>{}</strong></td><td data-label=\"Runs\">",
                s.name,
                s.name
            );
            match &s.work {
                ScheduledWork::Sync { repository, mirror, .. } => {
                    let repo = row.repository.as_deref().unwrap_or("(deleted)");
                    let remote = row.remote.as_deref().unwrap_or("(deleted)");
                    w!(
                        h,
                        "sync of <a href=\"/ui/repositories/{}/\">{}</a> from <code>{}</code>{}",
                        repository,
                        repo,
                        remote,
                        if *mirror { " (mirror)" } else { "" }
                    );
                }
                ScheduledWork::OrphanCleanup { protection_secs } => {
                    w!(h, "orphan cleanup (protecting {} min)", protection_secs / 60);
                }
            }
            h.raw("</td><td data-label=\"When\">");
            match (s.cadence.interval_secs(), s.cadence.cron_expr()) {
                (Some(secs), _) => w!(h, "every {}", format_interval(secs)),
                (None, Some(expr)) => w!(h, "cron <code>{}</code> (UTC)", expr),
                (None, None) => {}
            }
            h.raw("</td><td data-label=\"Next\">");
            match (&s.next_dispatch, s.enabled) {
                (Some(t), true) => w!(h, "{}", html::when(t)),
                _ => h.raw("paused"),
            }
            h.raw("</td><td data-label=\"Last task\">");
            match (s.last_task, row.last) {
                (Some(t), Some(state)) => w!(h, "<a href=\"/ui/tasks/{}/\">{}</a>", t, state.as_str()),
                (Some(_), None) => h.raw("(removed)"),
                (None, _) => h.raw("none yet"),
            }
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table></div>");
    }
    pager(&mut h, q, "offset", page, &list);
    Ok(View {
        title: "Schedules".into(),
        section: "/ui/schedules/",
        main: h,
        live: false,
    })
}

/// Links to what a task worked on.
fn resources(h: &mut Html, list: &[ResourceRef]) {
    for r in list {
        match r {
            ResourceRef::Repository { id, .. } => w!(h, "<a href=\"/ui/repositories/{}/\">repository</a> ", id),
            ResourceRef::RepositoryVersion { repository, number, .. } => w!(
                h,
                "<a href=\"/ui/repositories/{}/versions/{}/\">version {}</a> ",
                repository,
                number,
                number
            ),
            ResourceRef::Remote { .. } | ResourceRef::PullThroughRemote { .. } => {
                h.raw("<a href=\"/ui/remotes/\">remote</a> ");
            }
            ResourceRef::Distribution { .. } | ResourceRef::PullThroughDistribution { .. } => {
                h.raw("<a href=\"/ui/distributions/\">distribution</a> ");
            }
            ResourceRef::Namespace { .. } => {
                h.raw("namespace ");
            }
        }
    }
}

/// The first line of a task's error, at most 200 characters.
fn first_line(e: &str) -> String {
    let line = e.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// `/ui/tasks/`: the caller's tasks, newest first.
pub(super) async fn tasks(b: &Browse, who: &Identity, q: &Query) -> Result<View> {
    let page = q.page("offset")?;
    let list = b.tasks(who, page).await?;
    let live = list.items.iter().any(running);
    let mut h = Html::new();
    w!(h, "<h1>Tasks <span class=\"count\">{}</span></h1>", list.count);
    if live {
        w!(
            h,
            "<p class=\"live\">Tasks are running: this list refreshes every {} s.</p>",
            super::layout::LIVE_EVERY
        );
    }
    if list.items.is_empty() {
        h.raw("<p class=\"empty\">None you may see.</p>");
    } else {
        h.raw("<div class=\"scroll\"><table class=\"rows tasks\"><thead><tr><th>Task</th><th>State</th>");
        h.raw("<th>Progress</th><th>Started</th><th>Finished</th><th>Resources</th></tr></thead><tbody>");
        for t in &list.items {
            w!(
                h,
                "<tr data-task=\"{}\" data-state=\"{}\"><td data-label=\"Task\">",
                t.id,
                t.state.as_str()
            );
            w!(h, "<a href=\"/ui/tasks/{}/\">{}</a>", t.id, short_name(&t.name));
            if let Some(e) = &t.error {
                w!(h, "<div class=\"error\">{}</div>", first_line(e));
            }
            h.raw("</td><td data-label=\"State\">");
            state(&mut h, t.state);
            h.raw("</td><td data-label=\"Progress\">");
            progress(&mut h, t);
            w!(
                h,
                "</td><td data-label=\"Started\">{}</td>",
                t.started.as_ref().map(html::when).unwrap_or_default()
            );
            w!(
                h,
                "<td data-label=\"Finished\">{}</td>",
                t.finished.as_ref().map(html::when).unwrap_or_default()
            );
            h.raw("<td data-label=\"Resources\">");
            resources(&mut h, &t.created_resources);
            resources(&mut h, &t.reserved_resources);
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table></div>");
    }
    pager(&mut h, q, "offset", page, &list);
    Ok(View {
        title: "Tasks".into(),
        section: "/ui/tasks/",
        main: h,
        live,
    })
}

/// A task's name without Pulp's module path: `synchronize` for
/// `pulp_container.app.tasks.synchronize`.
fn short_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// `/ui/tasks/<id>/`.
pub(super) async fn task(b: &Browse, who: &Identity, id: Uuid) -> Result<View> {
    let t: Task = b.task(who, id).await?;
    let live = running(&t);
    let mut h = Html::new();
    w!(h, "<h1>{} ", short_name(&t.name));
    state(&mut h, t.state);
    h.raw("</h1>");
    if live {
        w!(
            h,
            "<p class=\"live\">Running: this page refreshes every {} s.</p>",
            super::layout::LIVE_EVERY
        );
    }
    h.raw("<dl class=\"facts\">");
    w!(h, "<dt>Task</dt><dd><code>{}</code></dd>", t.name);
    w!(h, "<dt>Id</dt><dd><code>{}</code></dd>", t.id);
    w!(h, "<dt>Created</dt><dd>{}</dd>", html::when(&t.created));
    if let Some(s) = &t.started {
        w!(h, "<dt>Started</dt><dd>{}</dd>", html::when(s));
    }
    if let Some(f) = &t.finished {
        w!(h, "<dt>Finished</dt><dd>{}</dd>", html::when(f));
    }
    if !t.created_resources.is_empty() {
        h.raw("<dt>Created</dt><dd>");
        resources(&mut h, &t.created_resources);
        h.raw("</dd>");
    }
    if !t.reserved_resources.is_empty() || !t.shared_resources.is_empty() {
        h.raw("<dt>Worked on</dt><dd>");
        resources(&mut h, &t.reserved_resources);
        resources(&mut h, &t.shared_resources);
        h.raw("</dd>");
    }
    h.raw("</dl>");
    if !t.progress_reports.is_empty() {
        h.raw("<section><h2>Progress</h2>");
        progress(&mut h, &t);
        h.raw("</section>");
    }
    if let Some(e) = &t.error {
        w!(h, "<section><h2>Error</h2><pre class=\"error\">{}</pre></section>", e);
    }
    Ok(View {
        title: format!("Task {}", short_name(&t.name)),
        section: "/ui/tasks/",
        main: h,
        live,
    })
}

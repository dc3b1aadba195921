//! The repositories, one repository (its versions, the distributions serving it, its latest
//! tags), one version (its tags, what it added and removed). Each handler parses, makes one
//! [`Browse`] call and renders.

use uuid::Uuid;

use super::html::{self, w, Html};
use super::parts::{counts, pager, pull_line, tag_table};
use super::{Query, Site, View};
use crate::domain::{ContentKey, ContentType};
use crate::services::{served_version, Browse, Identity, ManageError, RepoRow};
use crate::store::{Distribution, Listing, Page, Repository, RepositoryKind};

type Result<T, E = ManageError> = std::result::Result<T, E>;

fn repo_link(h: &mut Html, r: &Repository) {
    w!(h, "<a href=\"/ui/repositories/{}/\">{}</a>", r.id, r.name);
}

fn kind(r: &Repository) -> &'static str {
    match r.kind {
        RepositoryKind::Mirror => "synced",
        RepositoryKind::Push => "pushed",
    }
}

fn repo_table(h: &mut Html, q: &Query, key: &str, page: Page, rows: &Listing<RepoRow>) {
    if rows.items.is_empty() {
        h.raw("<p class=\"empty\">None you may see.</p>");
        return;
    }
    h.raw("<div class=\"scroll\"><table class=\"rows\"><thead><tr><th>Name</th><th>Latest version</th>");
    h.raw("<th>Served at</th><th>Updated</th></tr></thead><tbody>");
    for row in &rows.items {
        let r = &row.repo;
        w!(h, "<tr data-repository=\"{}\"><td data-label=\"Name\">", r.name);
        repo_link(h, r);
        if let Some(d) = r.description.as_deref().filter(|d| !d.is_empty()) {
            w!(h, "<div class=\"desc\">{}</div>", d);
        }
        w!(h, "</td><td data-label=\"Latest version\">{}</td>", r.latest_version);
        h.raw("<td data-label=\"Served at\">");
        for d in &row.served_by {
            w!(h, "<code class=\"path\">{}</code> ", d.base_path);
        }
        if row.served_by.is_empty() {
            h.raw("—");
        }
        w!(
            h,
            "</td><td data-label=\"Updated\">{}</td></tr>",
            html::when(&r.updated)
        );
    }
    h.raw("</tbody></table></div>");
    pager(h, q, key, page, rows);
}

/// `/ui/`: synced and pushed repositories.
pub(super) async fn list(b: &Browse, who: &Identity, q: &Query) -> Result<View> {
    let (synced, pushed) = (q.page("synced")?, q.page("pushed")?);
    let v = b.repositories(who, synced, pushed).await?;
    let mut h = Html::new();
    h.raw("<h1>Repositories</h1>");
    w!(
        h,
        "<section><h2>Synced <span class=\"count\">{}</span></h2>",
        v.synced.count
    );
    repo_table(&mut h, q, "synced", synced, &v.synced);
    w!(
        h,
        "</section><section><h2>Pushed <span class=\"count\">{}</span></h2>",
        v.pushed.count
    );
    repo_table(&mut h, q, "pushed", pushed, &v.pushed);
    h.raw("</section>");
    Ok(View {
        title: "Repositories".into(),
        section: "/ui/",
        main: h,
        live: false,
    })
}

/// The distributions serving a repository, each with what it serves and its pull line.
fn distributions(h: &mut Html, site: &Site, repo: &Repository, dists: &[Distribution]) {
    if dists.is_empty() {
        h.raw("<p class=\"empty\">No distribution you may see serves it.</p>");
        return;
    }
    h.raw("<ul class=\"dists\">");
    for d in dists {
        w!(
            h,
            "<li data-base-path=\"{}\"><div><strong>{}</strong> serves ",
            d.base_path,
            d.name
        );
        match (d.version, served_version(d, repo)) {
            (None, Some(n)) => w!(
                h,
                "the latest version (<a href=\"/ui/repositories/{}/versions/{}/\">{}</a>)",
                repo.id,
                n,
                n
            ),
            (_, Some(n)) => w!(
                h,
                "<a href=\"/ui/repositories/{}/versions/{}/\">version {}</a>",
                repo.id,
                n,
                n
            ),
            _ => {
                h.raw("nothing");
            }
        }
        if d.private {
            h.raw(" <span class=\"badge\">private</span>");
        }
        h.raw("</div>");
        pull_line(h, site, d);
        h.raw("</li>");
    }
    h.raw("</ul>");
}

/// `/ui/repositories/<id>/`.
pub(super) async fn show(b: &Browse, who: &Identity, site: &Site, q: &Query, id: Uuid) -> Result<View> {
    let (versions, tags) = (q.page("versions")?, q.page("tags")?);
    let v = b.repository(who, id, versions, tags).await?;
    let r = &v.repo;
    let mut h = Html::new();
    w!(h, "<h1>{} <span class=\"badge\">{}</span></h1>", r.name, kind(r));
    if let Some(d) = r.description.as_deref().filter(|d| !d.is_empty()) {
        w!(h, "<p class=\"desc\">{}</p>", d);
    }
    h.raw("<dl class=\"facts\">");
    w!(
        h,
        "<dt>Latest version</dt><dd><a href=\"/ui/repositories/{}/versions/{}/\">{}</a></dd>",
        r.id,
        r.latest_version,
        r.latest_version
    );
    if let Some(rem) = &v.remote {
        w!(
            h,
            "<dt>Remote</dt><dd><a href=\"/ui/remotes/\">{}</a>: <code>{}</code> <code>{}</code> ({})</dd>",
            rem.name,
            rem.url,
            rem.upstream_name,
            rem.policy.as_str()
        );
    }
    if let Some(n) = r.retain_repo_versions {
        w!(h, "<dt>Keeps</dt><dd>the newest {} versions</dd>", n);
    }
    if !r.pulp_labels.is_empty() {
        h.raw("<dt>Labels</dt><dd>");
        for (k, val) in &r.pulp_labels {
            w!(h, "<span class=\"label\">{}={}</span> ", k, val);
        }
        h.raw("</dd>");
    }
    w!(h, "<dt>Created</dt><dd>{}</dd></dl>", html::when(&r.created));

    h.raw("<section id=\"distributions\"><h2>Distributions</h2>");
    distributions(&mut h, site, r, &v.distributions);
    h.raw("</section>");

    w!(
        h,
        "<section id=\"versions\"><h2>Versions <span class=\"count\">{}</span></h2>",
        v.versions.count
    );
    h.raw("<div class=\"scroll\"><table class=\"rows versions\"><thead><tr><th>Version</th><th>Created</th>");
    h.raw("<th>Content</th><th>Added</th><th>Removed</th><th>Served by</th></tr></thead><tbody>");
    for ver in &v.versions.items {
        let s = &ver.content_summary;
        w!(h, "<tr data-version=\"{}\"><td data-label=\"Version\">", ver.number);
        w!(
            h,
            "<a href=\"/ui/repositories/{}/versions/{}/\">{}</a>",
            r.id,
            ver.number,
            ver.number
        );
        if ver.number == r.latest_version {
            h.raw(" <span class=\"badge\">latest</span>");
        }
        w!(h, "</td><td data-label=\"Created\">{}</td>", html::when(&ver.created));
        w!(h, "<td data-label=\"Content\">{}</td>", counts(&s.present, ""));
        change_cell(&mut h, "Added", "added", &counts(&s.added, "+"));
        change_cell(&mut h, "Removed", "removed", &counts(&s.removed, "−"));
        h.raw("<td data-label=\"Served by\">");
        let serving: Vec<&Distribution> = v
            .distributions
            .iter()
            .filter(|d| served_version(d, r) == Some(ver.number))
            .collect();
        for d in &serving {
            w!(h, "<code class=\"path\">{}</code> ", d.base_path);
        }
        if serving.is_empty() {
            h.raw("—");
        }
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table></div>");
    pager(&mut h, q, "versions", versions, &v.versions);
    h.raw("</section>");

    w!(
        h,
        "<section id=\"tags\"><h2>Tags of version {} <span class=\"count\">{}</span></h2>",
        r.latest_version,
        v.tags.count
    );
    tag_table(&mut h, &v.tags.items);
    pager(&mut h, q, "tags", tags, &v.tags);
    h.raw("</section>");
    Ok(View {
        title: r.name.clone(),
        section: "/ui/",
        main: h,
        live: false,
    })
}

/// A cell of what a version added or removed, coloured when it is something.
fn change_cell(h: &mut Html, label: &str, class: &str, text: &str) {
    if text == "none" || text == "0" {
        w!(h, "<td data-label=\"{}\">{}</td>", label, text);
    } else {
        w!(h, "<td data-label=\"{}\" class=\"{}\">{}</td>", label, class, text);
    }
}

/// Tags added or removed by a version: name → digest.
fn changed_tags(h: &mut Html, title: &'static str, class: &'static str, tags: &Listing<ContentKey>) {
    w!(h, "<h3>{} <span class=\"count\">{}</span></h3>", title, tags.count);
    if tags.items.is_empty() {
        h.raw("<p class=\"empty\">None.</p>");
        return;
    }
    w!(h, "<ul class=\"changes {}\">", class);
    for k in &tags.items {
        if let ContentKey::Tag { name, manifest } = k {
            w!(
                h,
                "<li data-tag=\"{}\"><strong>{}</strong> <code class=\"digest\">{}</code></li>",
                name.as_str(),
                name.as_str(),
                manifest
            );
        }
    }
    if tags.count > tags.items.len() {
        w!(h, "<li>and {} more</li>", tags.count - tags.items.len());
    }
    h.raw("</ul>");
}

/// `/ui/repositories/<id>/versions/<n>/`.
pub(super) async fn version(b: &Browse, who: &Identity, site: &Site, q: &Query, id: Uuid, n: u64) -> Result<View> {
    let tags = q.page("tags")?;
    let changes = Page { limit: 100, offset: 0 };
    let v = b.version(who, id, n, tags, changes).await?;
    let (r, ver) = (&v.repo, &v.version);
    let mut h = Html::new();
    h.raw("<p class=\"crumbs\">");
    repo_link(&mut h, r);
    h.raw("</p>");
    w!(h, "<h1>{} · version {}", r.name, ver.number);
    if ver.number == r.latest_version {
        h.raw(" <span class=\"badge\">latest</span>");
    }
    h.raw("</h1><dl class=\"facts\">");
    w!(h, "<dt>Created</dt><dd>{}</dd>", html::when(&ver.created));
    if let Some(base) = ver.base_version {
        w!(
            h,
            "<dt>Based on</dt><dd><a href=\"/ui/repositories/{}/versions/{}/\">version {}</a></dd>",
            r.id,
            base,
            base
        );
    }
    h.raw("</dl>");

    h.raw("<section id=\"distributions\"><h2>Served by</h2>");
    distributions(&mut h, site, r, &v.distributions);
    h.raw("</section>");

    let s = &ver.content_summary;
    h.raw("<section id=\"content\"><h2>Content</h2><div class=\"scroll\"><table class=\"rows\"><thead><tr>");
    h.raw("<th>Type</th><th>Present</th><th>Added</th><th>Removed</th></tr></thead><tbody>");
    for (ty, name) in [
        (ContentType::Tag, "Tags"),
        (ContentType::Manifest, "Manifests"),
        (ContentType::Blob, "Blobs"),
        (ContentType::Signature, "Signatures"),
    ] {
        let n = |c: &crate::domain::ContentTypeCounts| c.get(&ty).copied().unwrap_or(0);
        w!(
            h,
            "<tr data-type=\"{}\"><td data-label=\"Type\">{}</td>",
            ty.pulp_name(),
            name
        );
        w!(h, "<td data-label=\"Present\">{}</td>", n(&s.present));
        change_cell(&mut h, "Added", "added", &n(&s.added).to_string());
        change_cell(&mut h, "Removed", "removed", &n(&s.removed).to_string());
        h.raw("</tr>");
    }
    h.raw("</tbody></table></div>");
    changed_tags(&mut h, "Tags added", "added", &v.added);
    changed_tags(&mut h, "Tags removed", "removed", &v.removed);
    h.raw("</section>");

    w!(
        h,
        "<section id=\"tags\"><h2>Tags <span class=\"count\">{}</span></h2>",
        v.tags.count
    );
    tag_table(&mut h, &v.tags.items);
    pager(&mut h, q, "tags", tags, &v.tags);
    h.raw("</section>");
    Ok(View {
        title: format!("{} · version {}", r.name, ver.number),
        section: "/ui/",
        main: h,
        live: false,
    })
}

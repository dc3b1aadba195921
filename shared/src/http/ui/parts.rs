//! Pieces several pages show: the pager under a list, the `podman pull` line of a
//! distribution, content counts, a tag table, a task's state and progress.

use crate::domain::{ContentType, ContentTypeCounts, ManifestKind};
use crate::services::TagView;
use crate::store::{Distribution, Listing, Page, Task, TaskState};

use super::html::{self, w, Html};
use super::{Query, Site};

/// "1–50 of 120" with links to the previous and next pages of the list whose offset is
/// the query parameter `key`.
pub(super) fn pager<T>(h: &mut Html, q: &Query, key: &str, page: Page, listing: &Listing<T>) {
    let shown = listing.items.len();
    if listing.count <= shown && page.offset == 0 {
        return;
    }
    h.raw("<p class=\"pager\">");
    if shown > 0 {
        w!(h, "{}–{} of {}", page.offset + 1, page.offset + shown, listing.count);
    } else {
        w!(h, "none past {} of {}", page.offset, listing.count);
    }
    if page.offset > 0 {
        let prev = page.offset.saturating_sub(page.limit);
        w!(h, " <a href=\"{}\" rel=\"prev\">‹ Previous</a>", q.with(key, prev));
    }
    if page.offset + shown < listing.count {
        w!(
            h,
            " <a href=\"{}\" rel=\"next\">Next ›</a>",
            q.with(key, page.offset + page.limit)
        );
    }
    h.raw("</p>");
}

/// The command that pulls from a distribution.
pub(super) fn pull_command(site: &Site, d: &Distribution) -> String {
    format!("podman pull {}/{}", site.host, d.base_path)
}

/// The pull command as a block people copy from.
pub(super) fn pull_line(h: &mut Html, site: &Site, d: &Distribution) {
    w!(h, "<pre class=\"pull\"><code>{}</code></pre>", pull_command(site, d));
}

/// "3 tags, 5 manifests, 9 blobs", leaving out types of none (`none` when all are).
pub(super) fn counts(c: &ContentTypeCounts, sign: &str) -> String {
    let parts: Vec<String> = [
        (ContentType::Tag, "tag"),
        (ContentType::Manifest, "manifest"),
        (ContentType::Blob, "blob"),
        (ContentType::Signature, "signature"),
    ]
    .iter()
    .filter_map(|(ty, name)| {
        let n = c.get(ty).copied().unwrap_or(0);
        (n > 0).then(|| format!("{sign}{n} {name}{}", if n == 1 { "" } else { "s" }))
    })
    .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// A table of tags: name, digest, what the manifest is, its platforms, its size.
pub(super) fn tag_table(h: &mut Html, tags: &[TagView]) {
    if tags.is_empty() {
        h.raw("<p class=\"empty\">No tags.</p>");
        return;
    }
    h.raw("<div class=\"scroll\"><table class=\"rows tags\"><thead><tr><th>Tag</th><th>Digest</th>");
    h.raw("<th>Type</th><th>Platforms</th><th>Size</th></tr></thead><tbody>");
    for t in tags {
        w!(h, "<tr data-tag=\"{}\" data-digest=\"{}\">", t.name, t.digest);
        w!(h, "<td data-label=\"Tag\"><strong>{}</strong></td>", t.name);
        w!(
            h,
            "<td data-label=\"Digest\"><code class=\"digest\">{}</code></td>",
            t.digest
        );
        match &t.manifest {
            None => h.raw("<td data-label=\"Type\">not stored</td><td data-label=\"Platforms\"></td><td data-label=\"Size\"></td>"),
            Some(m) => {
                let kind = match m.record.parsed.kind {
                    ManifestKind::Image => "image",
                    ManifestKind::Index => "index",
                    ManifestKind::Artifact => "artifact",
                };
                w!(
                    h,
                    "<td data-label=\"Type\"><span title=\"{}\">{}</span></td>",
                    m.record.parsed.media_type,
                    kind
                );
                h.raw("<td data-label=\"Platforms\">");
                if m.children.is_empty() {
                    h.raw("—");
                } else {
                    h.raw("<ul class=\"platforms\">");
                    for c in &m.children {
                        let p = c.descriptor.platform.as_ref().map_or_else(
                            || "unknown".to_owned(),
                            |p| match &p.variant {
                                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                                None => format!("{}/{}", p.os, p.architecture),
                            },
                        );
                        w!(h, "<li title=\"{}\"><span class=\"platform\">{}</span>", c.descriptor.digest, p);
                        if let Some(sz) = c.size {
                            w!(h, " <span class=\"size\">{}</span>", html::size(sz));
                        }
                        h.raw("</li>");
                    }
                    h.raw("</ul>");
                }
                h.raw("</td>");
                let size = if m.children.is_empty() {
                    Some(m.size)
                } else {
                    m.children.iter().map(|c| c.size).sum::<Option<u64>>()
                };
                match size {
                    Some(sz) => w!(
                        h,
                        "<td data-label=\"Size\" title=\"{} bytes (config and layers, compressed)\">{}</td>",
                        sz,
                        html::size(sz)
                    ),
                    None => h.raw("<td data-label=\"Size\">—</td>"),
                };
            }
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table></div>");
}

/// A task state as a badge.
pub(super) fn state(h: &mut Html, s: TaskState) {
    w!(h, "<span class=\"state state-{}\">{}</span>", s.as_str(), s.as_str());
}

/// Whether a task may still change.
pub(super) fn running(t: &Task) -> bool {
    matches!(t.state, TaskState::Waiting | TaskState::Running | TaskState::Canceling)
}

/// A task's progress reports: message, count and a bar when the total is known.
pub(super) fn progress(h: &mut Html, t: &Task) {
    if t.progress_reports.is_empty() {
        return;
    }
    h.raw("<ul class=\"progress\">");
    for p in &t.progress_reports {
        w!(h, "<li><span>{}</span> ", p.message);
        match p.total {
            Some(total) if total > 0 => {
                w!(
                    h,
                    "<progress max=\"{}\" value=\"{}\"></progress> ",
                    total,
                    p.done.min(total)
                );
                w!(h, "<span class=\"count\">{} / {}</span>", p.done, total);
            }
            _ => w!(h, "<span class=\"count\">{}</span>", p.done),
        }
        h.raw("</li>");
    }
    h.raw("</ul>");
}

//! The document around every page: the head (the style sheet and script of the binary), the
//! navigation, who is logged in with the logout button; error pages; the embedded assets;
//! and the headers every answer of the page carries (a content security policy that allows
//! only the page's own style sheet and script, no framing, no caching of pages).

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};

use super::html::{w, Html};
use super::View;
use crate::services::Identity;

/// One entry of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavEntry {
    pub label: &'static str,
    pub href: &'static str,
}

/// The pages the navigation bar lists, in order. A new page adds its entry here (and its
/// path to `Route::parse`, its handler to the dispatch in `mod.rs`).
pub fn nav_entries() -> Vec<NavEntry> {
    vec![
        NavEntry {
            label: "Repositories",
            href: "/ui/",
        },
        NavEntry {
            label: "Distributions",
            href: "/ui/distributions/",
        },
        NavEntry {
            label: "Remotes",
            href: "/ui/remotes/",
        },
        NavEntry {
            label: "Tasks",
            href: "/ui/tasks/",
        },
        NavEntry {
            label: "Schedules",
            href: "/ui/schedules/",
        },
    ]
}

/// The files of the page, served from the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asset {
    Css,
    Js,
}

const CSS: &str = include_str!("assets/berth.css");
const JS: &str = include_str!("assets/berth.js");

impl Asset {
    pub(super) fn named(name: &str) -> Option<Asset> {
        match name {
            "berth.css" => Some(Asset::Css),
            "berth.js" => Some(Asset::Js),
            _ => None,
        }
    }
}

pub(super) fn asset(a: Asset) -> Response {
    let (body, ty) = match a {
        Asset::Css => (CSS, "text/css; charset=utf-8"),
        Asset::Js => (JS, "text/javascript; charset=utf-8"),
    };
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

/// The headers every answer under `/ui` carries.
pub(super) fn secure(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// How often a live page reloads its content, in seconds.
pub(super) const LIVE_EVERY: u64 = 2;

/// The whole document of a page, with `status`.
pub(super) fn document(who: Option<&Identity>, status: StatusCode, v: View) -> Response {
    let mut h = Html::new();
    h.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    w!(h, "<title>{} · Berth</title>", v.title);
    h.raw("<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/ui/static/berth.css\">");
    h.raw("<script src=\"/ui/static/berth.js\" defer></script>");
    if v.live {
        w!(
            h,
            "<noscript><meta http-equiv=\"refresh\" content=\"{}\"></noscript>",
            LIVE_EVERY
        );
        w!(h, "</head><body data-live=\"{}\">", LIVE_EVERY);
    } else {
        h.raw("</head><body>");
    }
    h.raw("<header class=\"top\"><a class=\"brand\" href=\"/ui/\">Berth</a>");
    if let Some(who) = who {
        h.raw("<nav>");
        for e in nav_entries() {
            let current = if e.href == v.section {
                " aria-current=\"page\""
            } else {
                ""
            };
            w!(h, "<a href=\"{}\"", e.href);
            h.raw(current);
            w!(h, ">{}</a>", e.label);
        }
        h.raw("</nav><div class=\"who\">");
        w!(h, "<span class=\"user\">{}</span>", who.user.as_deref().unwrap_or(""));
        if who.admin {
            h.raw(" <span class=\"badge\">admin</span>");
        }
        h.raw("<form method=\"post\" action=\"/ui/logout\"><button type=\"submit\">Log out</button></form></div>");
    }
    h.raw("</header><main>");
    h.html(v.main);
    h.raw("</main><footer>Berth · a read-only view; the management API is at <code>/pulp/api/v3/</code></footer>");
    h.raw("</body></html>\n");
    let mut r = Response::new(Body::from(h.into_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// An error page with a heading and one sentence.
pub(super) fn error(who: Option<&Identity>, status: StatusCode, title: &str, text: &str) -> Response {
    let mut main = Html::new();
    w!(main, "<p>{}</p>", text);
    error_html(who, status, title, main)
}

/// An error page with a heading and `body`.
pub(super) fn error_html(who: Option<&Identity>, status: StatusCode, title: &str, body: Html) -> Response {
    let mut main = Html::new();
    w!(main, "<h1>{}</h1>", title);
    main.html(body);
    if who.is_some() {
        main.raw("<p><a href=\"/ui/\">Back to the repositories</a></p>");
    }
    document(
        who,
        status,
        View {
            title: title.to_owned(),
            section: "",
            main,
            live: false,
        },
    )
}

//! The web page under `/ui/`: a read-only view of the repositories and their versions, the
//! distributions (with the `podman pull` line for each), remotes and tasks, rendered as HTML
//! on the server. It shows what the caller may view, as the management API's lists do, and
//! takes the same accounts: Basic credentials, or a session cookie from the login form
//! (`/ui/login`). One wildcard route and [`Route::parse`] take every path; each page's
//! handler parses, makes one [`Browse`] call and renders. The style sheet and the script
//! (which reloads a page's content while its tasks run) are part of the binary.
//!
//! - [`html`]: escaping (every value on a page goes through it) and formatting.
//! - [`layout`]: the document around each page, the navigation ([`nav_entries`]).
//! - [`session`]: the login form, logging in and out, the session cookie, the checks on
//!   cross-site posts.
//! - [`repositories`]: the repositories, one repository, one version.
//! - [`pages`]: distributions, remotes, tasks.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`, over the services only.

pub mod html;
mod layout;
mod pages;
mod parts;
mod repositories;
mod session;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use uuid::Uuid;

use self::html::Html;
pub use self::layout::{nav_entries, NavEntry};
use crate::services::{Accounts, Browse, Checked, Identity, Manage, ManageError, Sessions, Users};
use crate::store::{FieldKey, Page};

/// What the page's handlers share.
pub struct UiState {
    browse: Browse,
    sessions: Sessions,
    /// The URL clients use; derived from each request when unset.
    public_url: Option<String>,
}

impl UiState {
    /// Sessions are sealed with `field_key` (every instance sharing it reads them); without
    /// one, with a key of this process's own.
    pub fn new(
        manage: Arc<Manage>,
        users: Arc<Users>,
        accounts: Arc<Accounts>,
        field_key: Option<Arc<FieldKey>>,
        public_url: Option<String>,
    ) -> Self {
        UiState {
            browse: Browse::new(manage, accounts.clone()),
            sessions: Sessions::new(field_key, users, accounts),
            public_url,
        }
    }
}

type S = Arc<UiState>;

/// `/ui` and everything under it.
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/ui", any(ui))
        .route("/ui/", any(ui))
        .route("/ui/{*rest}", any(ui))
        .with_state(Arc::new(state))
}

/// Rows a list page shows at once.
pub const PAGE_ROWS: usize = 50;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/ui` (answered with a redirect to `/ui/`).
    Bare,
    Repositories,
    Repository(Uuid),
    Version(Uuid, u64),
    Distributions,
    Remotes,
    Tasks,
    Task(Uuid),
    Schedules,
    Login,
    Logout,
    Asset(layout::Asset),
    NotFound,
}

impl Route {
    /// The route of a request path. Ids are lowercase UUIDs as the API writes them; anything
    /// else under `/ui/` is [`Route::NotFound`].
    fn parse(path: &str) -> Route {
        if path == "/ui" {
            return Route::Bare;
        }
        let Some(rest) = path.strip_prefix("/ui/") else {
            return Route::NotFound;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| Uuid::try_parse(s).ok().filter(|u| u.hyphenated().to_string() == s);
        let number = |s: &str| s.parse::<u64>().ok().filter(|n| n.to_string() == s);
        match parts.as_slice() {
            [""] => Route::Repositories,
            ["repositories", r, ""] => id(r).map_or(Route::NotFound, Route::Repository),
            ["repositories", r, "versions", n, ""] => match (id(r), number(n)) {
                (Some(r), Some(n)) => Route::Version(r, n),
                _ => Route::NotFound,
            },
            ["distributions", ""] => Route::Distributions,
            ["remotes", ""] => Route::Remotes,
            ["tasks", ""] => Route::Tasks,
            ["schedules", ""] => Route::Schedules,
            ["tasks", t, ""] => id(t).map_or(Route::NotFound, Route::Task),
            ["login"] => Route::Login,
            ["logout"] => Route::Logout,
            ["static", name] => layout::Asset::named(name).map_or(Route::NotFound, Route::Asset),
            _ => Route::NotFound,
        }
    }
}

/// Where clients reach Berth: for links, the `podman pull` lines and the origin a form post
/// must come from.
pub(crate) struct Site {
    /// `scheme://host[:port]`, as browsers write an `Origin`.
    pub origin: String,
    /// The host (and port) clients pull from, as the API's `registry_path` names it.
    pub host: String,
    /// Whether clients reach Berth over HTTPS (the session cookie is `Secure` then).
    pub secure: bool,
}

impl Site {
    fn of(public_url: Option<&str>, headers: &HeaderMap) -> Site {
        let (url, host) = match public_url {
            Some(u) => (
                u.trim_end_matches('/').to_owned(),
                u.split("://").nth(1).unwrap_or(u).trim_end_matches('/').to_owned(),
            ),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
                    .unwrap_or("localhost")
                    .to_owned();
                (format!("{}://{host}", super::scheme(headers)), host)
            }
        };
        let origin = url::Url::parse(&url).map_or_else(|_| url.clone(), |u| u.origin().ascii_serialization());
        Site {
            secure: origin.starts_with("https://"),
            origin,
            host,
        }
    }
}

/// A page's content, before the document around it.
pub(crate) struct View {
    pub title: String,
    /// The navigation entry it belongs to.
    pub section: &'static str,
    pub main: Html,
    /// Reload the content every few seconds (tasks are running).
    pub live: bool,
}

async fn ui(State(s): State<S>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let site = Site::of(s.public_url.as_deref(), &parts.headers);
    let route = Route::parse(parts.uri.path());
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    let mut resp = match route {
        Route::Bare => redirect("/ui/"),
        Route::Asset(a) if get => layout::asset(a),
        Route::Login if get => session::form(&parts, None),
        Route::Login if parts.method == Method::POST => session::log_in(&s, &site, &parts, body).await,
        Route::Logout if parts.method == Method::POST => session::log_out(&site, &parts),
        Route::NotFound => layout::error(None, StatusCode::NOT_FOUND, "Not found", "There is no page here."),
        Route::Login => not_allowed("GET, HEAD, POST"),
        Route::Logout => not_allowed("POST"),
        _ if !get => not_allowed("GET, HEAD"),
        _ => page(&s, &site, &parts, route).await,
    };
    layout::secure(&mut resp);
    resp
}

/// `303 See Other` to a path of the page.
pub(crate) fn redirect(to: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = layout::error(
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "The web page is read-only.",
    );
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Who is calling: Basic credentials (checked and throttled as every login), else the
/// session cookie. `Ok(None)`: anonymous. `Err`: the answer to send instead of the page.
async fn identify(s: &UiState, headers: &HeaderMap) -> Result<Option<Identity>, Response> {
    let now = chrono::Utc::now().timestamp();
    let store_failed = |e: crate::ports::StoreError| {
        tracing::error!(error = ?e, "identifying a caller of the web page failed");
        layout::error(
            None,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Something went wrong; try again.",
        )
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let creds = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok());
        let Some((user, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
            return Err(challenge("The credentials sent are not Basic credentials."));
        };
        if user.is_empty() && password.is_empty() {
            return Ok(None);
        }
        let client = super::auth::client_addr();
        return match s
            .sessions
            .check(user, password, client, now)
            .await
            .map_err(store_failed)?
        {
            Checked::User { identity, .. } => Ok(Some(identity)),
            Checked::Denied => Err(challenge("Invalid username or password.")),
            Checked::Throttled(wait) => Err(session::throttled(wait)),
        };
    }
    match session::cookie(headers) {
        Some(v) => s.sessions.identity(v, now).await.map_err(store_failed),
        None => Ok(None),
    }
}

/// `401` with a Basic challenge and a link to the login form.
fn challenge(message: &str) -> Response {
    let mut main = Html::new();
    html::w!(main, "<p>{}</p>", message);
    main.raw("<p><a href=\"/ui/login\">Log in</a> to see this page.</p>");
    let mut r = layout::error_html(None, StatusCode::UNAUTHORIZED, "Log in", main);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"berth\""),
    );
    r
}

/// The answer to an anonymous request for a page: a browser (which asks for HTML) is sent
/// to the login form, which brings it back here; other clients get a Basic challenge.
fn anonymous(parts: &Parts) -> Response {
    let wants_html = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if !wants_html {
        return challenge("This page needs a login.");
    }
    let here = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str());
    let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    redirect(&format!("/ui/login?{next}"))
}

/// The query parameters of a page.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(parts: &Parts) -> Query {
        Query(
            parts
                .uri
                .query()
                .and_then(|q| serde_urlencoded::from_str(q).ok())
                .unwrap_or_default(),
        )
    }

    /// The rows from `key` (an offset) on, [`PAGE_ROWS`] of them; a bad offset is refused.
    pub fn page(&self, key: &'static str) -> Result<Page, ManageError> {
        let offset = match self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()) {
            None | Some("") => 0,
            Some(v) => v
                .parse()
                .map_err(|_| ManageError::field(key, "must be a whole number of rows"))?,
        };
        Ok(Page {
            limit: PAGE_ROWS,
            offset,
        })
    }

    /// This query with `key` set to `value` (for the links of a pager).
    pub fn with(&self, key: &str, value: usize) -> String {
        let mut q: Vec<(String, String)> = self.0.iter().filter(|(k, _)| k != key).cloned().collect();
        if value > 0 {
            q.push((key.to_owned(), value.to_string()));
        }
        let s = serde_urlencoded::to_string(&q).unwrap_or_default();
        if s.is_empty() {
            String::new()
        } else {
            format!("?{s}")
        }
    }
}

async fn page(s: &UiState, site: &Site, parts: &Parts, route: Route) -> Response {
    let who = match identify(s, &parts.headers).await {
        Ok(Some(who)) => who,
        Ok(None) => return anonymous(parts),
        Err(r) => return r,
    };
    let q = Query::parse(parts);
    let b = &s.browse;
    let view = match route {
        Route::Repositories => repositories::list(b, &who, &q).await,
        Route::Repository(id) => repositories::show(b, &who, site, &q, id).await,
        Route::Version(id, n) => repositories::version(b, &who, site, &q, id, n).await,
        Route::Distributions => pages::distributions(b, &who, site, &q).await,
        Route::Remotes => pages::remotes(b, &who, &q).await,
        Route::Schedules => pages::schedules(b, &who, &q).await,
        Route::Tasks => pages::tasks(b, &who, &q).await,
        Route::Task(id) => pages::task(b, &who, id).await,
        _ => Err(ManageError::NotFound),
    };
    match view {
        Ok(v) => layout::document(Some(&who), StatusCode::OK, v),
        Err(e) => failed(&who, e),
    }
}

/// The page for a refused or failed call: what the caller may not see is not found, as on
/// the API; errors are logged and answered without their details.
fn failed(who: &Identity, e: ManageError) -> Response {
    let (status, title, text) = match &e {
        ManageError::NotFound => (
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here, or you may not see it.",
        ),
        ManageError::Forbidden => (StatusCode::FORBIDDEN, "Forbidden", "You may not see this."),
        ManageError::Field { .. }
        | ManageError::FieldItem { .. }
        | ManageError::Refused(_)
        | ManageError::NonField(_) => {
            return layout::error(Some(who), StatusCode::BAD_REQUEST, "Bad request", &e.to_string());
        }
        ManageError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "Busy", "Berth is busy; try again."),
        ManageError::Internal(_) => {
            tracing::error!(error = ?e, "a page of the web page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "Something went wrong; try again.",
            )
        }
    };
    layout::error(Some(who), status, title, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages_and_nothing_else() {
        let id = Uuid::new_v4();
        assert_eq!(Route::parse("/ui"), Route::Bare);
        assert_eq!(Route::parse("/ui/"), Route::Repositories);
        assert_eq!(Route::parse(&format!("/ui/repositories/{id}/")), Route::Repository(id));
        assert_eq!(
            Route::parse(&format!("/ui/repositories/{id}/versions/12/")),
            Route::Version(id, 12)
        );
        assert_eq!(Route::parse(&format!("/ui/tasks/{id}/")), Route::Task(id));
        for bad in [
            "/ui/x".to_owned(),
            format!("/ui/repositories/{id}"),
            format!("/ui/repositories/{}/", id.simple()),
            format!("/ui/repositories/{}/", id.hyphenated().to_string().to_uppercase()),
            format!("/ui/repositories/{id}/versions/01/"),
            format!("/ui/repositories/{id}/versions/-1/"),
            format!("/ui/repositories/{id}/versions/99999999999999999999999/"),
            "/ui/static/../x".into(),
            "/ui/static/other.css".into(),
            "/uix".into(),
        ] {
            assert_eq!(Route::parse(&bad), Route::NotFound, "{bad}");
        }
    }

    #[test]
    fn the_site_comes_from_the_public_url_else_from_the_request() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("reg.test:5000"));
        let s = Site::of(None, &h);
        assert_eq!(
            (s.origin.as_str(), s.host.as_str(), s.secure),
            ("http://reg.test:5000", "reg.test:5000", false)
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let s = Site::of(None, &h);
        assert_eq!((s.origin.as_str(), s.secure), ("https://reg.test:5000", true));
        let s = Site::of(Some("https://registry.example.com:443/"), &h);
        assert_eq!(
            (s.origin.as_str(), s.host.as_str(), s.secure),
            ("https://registry.example.com", "registry.example.com:443", true)
        );
    }
}

//! Logging in and out of the web page. The form at `/ui/login` posts the user name and
//! password; a right one sets the session cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
//! when clients reach Berth over HTTPS, for `/ui` only, expiring with the session) and
//! returns to the page asked for. The password check is the one every login goes through,
//! throttled the same way (`429` with `Retry-After`). The only posts of the page, the login
//! and the logout, must come from the page itself: their `Origin` (or, without one, their
//! `Referer`) must be Berth's own, besides the cookie being `SameSite=Strict`.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::html::{w, Html};
use super::{layout, redirect, Site, UiState, View};
use crate::services::{Checked, SESSION_LIFETIME};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "berth_session";

/// The largest login form read.
const MAX_FORM: usize = 16 * 1024;

/// The session cookie's value, when the request has one.
pub(super) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` that keeps `value` for a session's lifetime (an empty value that
/// expires at once clears it).
fn set_cookie(site: &Site, value: &str) -> Option<HeaderValue> {
    let max_age = if value.is_empty() {
        0
    } else {
        SESSION_LIFETIME.as_secs()
    };
    let secure = if site.secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// A page path to return to after the login: one of the page's own (`/ui/…`), else `/ui/`.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

/// Whether a post comes from Berth's own page: its `Origin`, or without one its
/// `Referer`'s, is the site's, and a `Sec-Fetch-Site` (when sent) says so too.
fn same_origin(site: &Site, headers: &HeaderMap) -> bool {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(fetch) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if fetch != "same-origin" && fetch != "none" {
            return false;
        }
    }
    let origin = match header(header::ORIGIN) {
        Some(o) => url::Url::parse(o).ok(),
        None => header(header::REFERER).and_then(|r| url::Url::parse(r).ok()),
    };
    let site = url::Url::parse(&site.origin).ok().map(|u| u.origin());
    match (origin, site) {
        (Some(o), Some(s)) => o.origin().is_tuple() && o.origin() == s,
        _ => false,
    }
}

/// The login form, with `problem` above it (and the status it is answered with).
pub(super) fn form(parts: &Parts, problem: Option<(StatusCode, &str)>) -> Response {
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let next = next_page(query.iter().find(|(k, _)| k == "next").map(|(_, v)| v.as_str()));
    form_page(&next, "", problem)
}

fn form_page(next: &str, user: &str, problem: Option<(StatusCode, &str)>) -> Response {
    let mut main = Html::new();
    main.raw("<section class=\"login\"><h1>Log in</h1>");
    if let Some((_, p)) = problem {
        w!(main, "<p class=\"problem\" role=\"alert\">{}</p>", p);
    }
    main.raw("<form method=\"post\" action=\"/ui/login\">");
    w!(main, "<input type=\"hidden\" name=\"next\" value=\"{}\">", next);
    main.raw("<label for=\"username\">User name</label>");
    w!(
        main,
        "<input id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" required value=\"{}\">",
        user
    );
    main.raw("<label for=\"password\">Password</label>");
    main.raw("<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>");
    main.raw("<button type=\"submit\">Log in</button></form>");
    main.raw(
        "<p class=\"hint\">The accounts are Berth's: the admin, and the users of the management API.</p></section>",
    );
    let status = problem.map_or(StatusCode::OK, |(s, _)| s);
    let mut r = layout::document(
        None,
        status,
        View {
            title: "Log in".into(),
            section: "",
            main,
            live: false,
        },
    );
    if status == StatusCode::UNAUTHORIZED {
        // a challenge no browser answers with its own dialog: the form is the way in
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Form realm=\"berth\""),
        );
    }
    r
}

fn cross_site() -> Response {
    layout::error(
        None,
        StatusCode::FORBIDDEN,
        "Refused",
        "This form must be sent from Berth's own page (its Origin did not match).",
    )
}

/// `429` with `Retry-After`, for a throttled login.
pub(super) fn throttled(wait: Duration) -> Response {
    let secs = crate::http::auth::retry_after_secs(wait);
    let mut r = layout::error(
        None,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed logins",
        &format!("Too many failed logins for this user or from this address; try again in {secs} s."),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// `POST /ui/login`: checks the form's password and starts a session.
pub(super) async fn log_in(s: &UiState, site: &Site, parts: &Parts, body: Body) -> Response {
    if !same_origin(site, &parts.headers) {
        return cross_site();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_FORM).await else {
        return form_page(
            "/ui/",
            "",
            Some((StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")),
        );
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| fields.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    let next = next_page(field("next"));
    let (Some(user), Some(password)) = (field("username").filter(|u| !u.is_empty()), field("password")) else {
        return form_page(
            &next,
            "",
            Some((StatusCode::BAD_REQUEST, "Enter a user name and a password.")),
        );
    };
    let now = chrono::Utc::now().timestamp();
    let checked = s
        .sessions
        .check(user, password, crate::http::auth::client_addr(), now)
        .await;
    match checked {
        Ok(Checked::User { session, .. }) => {
            let mut r = redirect(&next);
            if let Some(c) = set_cookie(site, &session) {
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            r
        }
        Ok(Checked::Denied) => form_page(
            &next,
            user,
            Some((StatusCode::UNAUTHORIZED, "Invalid user name or password.")),
        ),
        Ok(Checked::Throttled(wait)) => {
            let secs = crate::http::auth::retry_after_secs(wait);
            let msg = format!("Too many failed logins for this user or from this address; try again in {secs} s.");
            let mut r = form_page(&next, user, Some((StatusCode::TOO_MANY_REQUESTS, &msg)));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Err(e) => {
            tracing::error!(error = ?e, "a login on the web page failed");
            form_page(
                &next,
                user,
                Some((StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong; try again.")),
            )
        }
    }
}

/// `POST /ui/logout`: forgets the session in the browser and shows the login form.
pub(super) fn log_out(site: &Site, parts: &Parts) -> Response {
    if !same_origin(site, &parts.headers) {
        return cross_site();
    }
    let mut r = redirect("/ui/login");
    if let Some(c) = set_cookie(site, "") {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(origin: &str) -> Site {
        Site {
            origin: origin.into(),
            host: "h".into(),
            secure: origin.starts_with("https"),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn posts_must_come_from_the_site_itself() {
        let s = site("http://reg.test:5000");
        assert!(same_origin(&s, &headers(&[("origin", "http://reg.test:5000")])));
        assert!(same_origin(
            &s,
            &headers(&[("referer", "http://reg.test:5000/ui/login?next=/ui/")])
        ));
        assert!(same_origin(
            &s,
            &headers(&[("origin", "http://reg.test:5000"), ("sec-fetch-site", "same-origin")])
        ));
        for bad in [
            headers(&[]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://evil.test")]),
            headers(&[("origin", "https://reg.test:5000")]),
            headers(&[("origin", "http://reg.test:5001")]),
            headers(&[("referer", "http://evil.test/ui/")]),
            headers(&[("origin", "http://reg.test:5000"), ("sec-fetch-site", "cross-site")]),
            headers(&[("origin", "http://reg.test:5000"), ("sec-fetch-site", "same-site")]),
        ] {
            assert!(!same_origin(&s, &bad), "{bad:?}");
        }
        // default ports are the same origin
        assert!(same_origin(
            &site("https://reg.example.com"),
            &headers(&[("origin", "https://reg.example.com:443")])
        ));
    }

    #[test]
    fn only_the_pages_own_paths_are_returned_to() {
        assert_eq!(next_page(Some("/ui/tasks/?offset=50")), "/ui/tasks/?offset=50");
        for bad in [
            None,
            Some("https://evil.test/"),
            Some("//evil.test/ui/"),
            Some("/ui//evil"),
            Some("/v2/"),
            Some("/ui/\\x"),
            Some("/ui/ x"),
        ] {
            assert_eq!(next_page(bad), "/ui/", "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_with_its_attributes() {
        let h = headers(&[("cookie", "a=1; berth_session=abc+/=; b=2")]);
        assert_eq!(cookie(&h), Some("abc+/="));
        assert_eq!(cookie(&headers(&[("cookie", "berth_session=")])), None);
        let set = set_cookie(&site("https://x"), "v").unwrap();
        assert_eq!(
            set.to_str().unwrap(),
            format!(
                "berth_session=v; Path=/ui; Max-Age={}; HttpOnly; SameSite=Strict; Secure",
                SESSION_LIFETIME.as_secs()
            )
        );
        let clear = set_cookie(&site("http://x"), "").unwrap();
        assert_eq!(
            clear.to_str().unwrap(),
            "berth_session=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }
}

//! The web page under `/ui/` through the router in process: what each user sees (the same as
//! the API's lists show them), every value escaped, logins by Basic credentials and by the
//! form (the session cookie, logout, wrong passwords, throttling, cross-site posts), and the
//! answers for what is not there; in both registry auth modes and on every store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth::app::{LocalApp, Settings};
use berth::domain::{media, Digest};
use berth::http::ui::{nav_entries, router, UiState};
use berth::services::{LoginLimits, Users};
use berth::store::FieldKey;
use common::http::{basic, Req, Resp};
use common::teams::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const ORIGIN: &str = "http://reg.test:5000";
const XSS: &str = "<script>alert('x')</script>";
const SCHEDULES: &str = "/pulp/api/v3/task-schedules/";

/// A page as a browser asks for it, with Basic credentials or a session cookie.
async fn get(t: &T, path: &str, who: Option<(&str, &str)>, cookie: Option<&str>) -> Resp {
    let mut r = Req::get(path)
        .header("host", HOST)
        .header("accept", "text/html,*/*;q=0.8");
    if let Some((u, p)) = who {
        r = r.basic(u, p);
    }
    if let Some(c) = cookie {
        r = r.header("cookie", &format!("berth_session={c}"));
    }
    r.send(&t.router).await
}

/// The page's text, asserting the answer is an HTML page with the given status.
fn html(r: &Resp, status: StatusCode) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
    assert!(r.header("content-security-policy").contains("script-src 'self'"));
    String::from_utf8(r.body.clone()).unwrap()
}

/// Posts the login form from the page's own origin.
async fn post_login(t: &T, user: &str, password: &str, next: &str) -> Resp {
    let form = serde_urlencoded::to_string([("username", user), ("password", password), ("next", next)]).unwrap();
    Req::new(Method::POST, "/ui/login")
        .header("host", HOST)
        .header("origin", ORIGIN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send(&t.router)
        .await
}

/// The session cookie a successful login sets.
fn session_of(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let set = r.header("set-cookie");
    let value = set.strip_prefix("berth_session=").unwrap().split(';').next().unwrap();
    assert!(!value.is_empty(), "{set}");
    value.to_owned()
}

fn assert_escaped(body: &str) {
    assert!(!body.contains("<script>alert"), "an unescaped value:\n{body}");
    assert!(!body.contains("<b>"), "an unescaped value:\n{body}");
    assert!(
        body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{body}"
    );
}

async fn make_users(t: &T) {
    for (name, pw) in [ALICE, BOB] {
        t.admin(Method::POST, USERS, Some(json!({"username": name, "password": pw})))
            .await;
    }
}

/// The tag names and manifest digests of a version, as the API lists them.
async fn api_tags(t: &T, who: (&str, &str), version_href: &str) -> Vec<(String, String)> {
    let r = t
        .api(
            Method::GET,
            &format!("/pulp/api/v3/content/container/tags/?repository_version={version_href}"),
            who,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut out = Vec::new();
    for tag in r.json()["results"].as_array().unwrap() {
        let m = t
            .api(Method::GET, tag["tagged_manifest"].as_str().unwrap(), who, None)
            .await;
        out.push((
            tag["name"].as_str().unwrap().to_owned(),
            m.json()["digest"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

/// The id in an href (`…/<uuid>/`).
fn id_of(href: &str) -> &str {
    href.trim_end_matches('/').rsplit('/').next().unwrap()
}

async fn pages_show_what_each_user_may_view(token_auth: bool, store: Store) {
    let t = T::new(token_auth, store).await;
    make_users(&t).await;
    // Given alice's private image, a public one of the admin, and a synced repository whose
    // name, description, labels, remote and distribution hold markup
    assert_eq!(t.push(Some(ALICE), "alice/app", "1").await, StatusCode::CREATED);
    let a_dist = t.dist_href("alice/app").await;
    let r = t
        .api(Method::PATCH, &a_dist, ALICE, Some(json!({"private": true})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(
        t.push(Some(("admin", PW)), "public/app", "v1").await,
        StatusCode::CREATED
    );
    let remote = t
        .admin(
            Method::POST,
            "/pulp/api/v3/remotes/container/container/",
            Some(json!({"name": XSS, "url": "http://127.0.0.1:9", "upstream_name": "lib/x", "include_tags": ["v*"]})),
        )
        .await;
    let repo = t
        .admin(
            Method::POST,
            REPOS,
            Some(
                json!({"name": XSS, "description": "<b>bold</b>", "pulp_labels": {XSS: XSS},
                        "remote": remote["pulp_href"]}),
            ),
        )
        .await;
    let repo_id = id_of(repo["pulp_href"].as_str().unwrap()).to_owned();
    t.admin(
        Method::POST,
        DISTS,
        Some(json!({"name": XSS, "base_path": "mirror/x", "repository": repo["pulp_href"], "description": "<b>d</b>"})),
    )
    .await;

    // the admin sees everything, every value escaped
    let admin = Some(("admin", PW));
    let home = html(&get(&t, "/ui/", admin, None).await, StatusCode::OK);
    assert_escaped(&home);
    for name in ["alice/app", "public/app"] {
        assert!(home.contains(&format!("data-repository=\"{name}\"")), "{home}");
    }
    for e in nav_entries() {
        assert!(home.contains(&format!("href=\"{}\"", e.href)), "{home}");
    }
    let page = html(
        &get(&t, &format!("/ui/repositories/{repo_id}/"), admin, None).await,
        StatusCode::OK,
    );
    assert_escaped(&page);
    assert!(page.contains("<dt>Remote</dt>"), "{page}");
    assert!(
        page.contains("<pre class=\"pull\"><code>podman pull reg.test:5000/mirror/x</code></pre>"),
        "{page}"
    );
    let dists = html(&get(&t, "/ui/distributions/", admin, None).await, StatusCode::OK);
    assert_escaped(&dists);
    assert!(dists.contains("podman pull reg.test:5000/alice/app"), "{dists}");
    let remotes = html(&get(&t, "/ui/remotes/", admin, None).await, StatusCode::OK);
    assert_escaped(&remotes);
    assert!(remotes.contains("<code>v*</code>"), "{remotes}");
    let tasks = html(&get(&t, "/ui/tasks/", admin, None).await, StatusCode::OK);
    assert!(tasks.contains("data-state=\"completed\""), "{tasks}");
    // schedules: a sync of the repository every hour and a nightly cleanup, both shown, escaped
    t.admin(
        Method::POST,
        SCHEDULES,
        Some(json!({"name": XSS, "repository": repo["pulp_href"], "remote": remote["pulp_href"], "dispatch_interval": "01:00:00"})),
    )
    .await;
    t.admin(
        Method::POST,
        SCHEDULES,
        Some(json!({"name": "cleanup", "task_name": "pulpcore.app.tasks.orphan.orphan_cleanup", "cron": "0 3 * * *"})),
    )
    .await;
    let schedules = html(&get(&t, "/ui/schedules/", admin, None).await, StatusCode::OK);
    assert_escaped(&schedules);
    assert_eq!(schedules.matches("data-schedule=").count(), 2, "{schedules}");
    assert!(schedules.contains("every 01:00:00"), "{schedules}");
    assert!(schedules.contains("cron <code>0 3 * * *</code>"), "{schedules}");
    assert!(
        schedules.contains(&format!("href=\"/ui/repositories/{repo_id}/\"")),
        "{schedules}"
    );

    // alice sees her repository with its tag, as the API lists it
    let a_repo = t
        .api(
            Method::GET,
            "/pulp/api/v3/repositories/container/container-push/?name=alice/app",
            ALICE,
            None,
        )
        .await
        .json()["results"][0]
        .clone();
    let a_id = id_of(a_repo["pulp_href"].as_str().unwrap()).to_owned();
    let page = html(
        &get(&t, &format!("/ui/repositories/{a_id}/"), Some(ALICE), None).await,
        StatusCode::OK,
    );
    let tags = api_tags(&t, ALICE, a_repo["latest_version_href"].as_str().unwrap()).await;
    assert_eq!(tags.len(), 1);
    for (name, digest) in &tags {
        assert!(
            page.contains(&format!("data-tag=\"{name}\" data-digest=\"{digest}\"")),
            "{page}"
        );
    }
    assert!(
        page.contains("data-version=\"1\"") && page.contains("data-version=\"0\""),
        "{page}"
    );
    assert!(page.contains("podman pull reg.test:5000/alice/app"), "{page}");

    // bob sees what the API shows him: the public image and the synced repository (through
    // its public distribution), not alice's private image nor the remote
    let bob_home = html(&get(&t, "/ui/", Some(BOB), None).await, StatusCode::OK);
    for (list, kind) in [
        (REPOS, "Synced"),
        ("/pulp/api/v3/repositories/container/container-push/", "Pushed"),
    ] {
        let api_names = t.names(BOB, list, "name").await;
        let section = bob_home
            .split(&format!("<h2>{kind} "))
            .nth(1)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap();
        let shown: Vec<String> = section
            .split("data-repository=\"")
            .skip(1)
            .map(|s| {
                s.split('"')
                    .next()
                    .unwrap()
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&#39;", "'")
            })
            .collect();
        assert_eq!(shown, api_names, "{kind}");
    }
    assert!(!bob_home.contains("alice/app"), "{bob_home}");
    let r = get(&t, &format!("/ui/repositories/{a_id}/"), Some(BOB), None).await;
    assert!(html(&r, StatusCode::NOT_FOUND).contains("Not found"));
    let r = get(&t, &format!("/ui/repositories/{a_id}/versions/1/"), Some(BOB), None).await;
    html(&r, StatusCode::NOT_FOUND);
    let page = html(
        &get(&t, &format!("/ui/repositories/{repo_id}/"), Some(BOB), None).await,
        StatusCode::OK,
    );
    assert!(!page.contains("<dt>Remote</dt>"), "bob may not view the remote: {page}");
    let bob_dists = html(&get(&t, "/ui/distributions/", Some(BOB), None).await, StatusCode::OK);
    assert!(!bob_dists.contains("alice/app"), "{bob_dists}");
    assert!(bob_dists.contains("public/app"), "{bob_dists}");
    let bob_remotes = html(&get(&t, "/ui/remotes/", Some(BOB), None).await, StatusCode::OK);
    assert!(!bob_remotes.contains("&lt;script"), "{bob_remotes}");
    // bob sees the schedule of the repository he sees, as the API lists it, not the cleanup
    let bob_schedules = html(&get(&t, "/ui/schedules/", Some(BOB), None).await, StatusCode::OK);
    let api_schedules = t.names(BOB, SCHEDULES, "name").await;
    assert_eq!(api_schedules, vec![XSS.to_owned()]);
    assert_eq!(bob_schedules.matches("data-schedule=").count(), 1, "{bob_schedules}");
    assert!(!bob_schedules.contains("orphan cleanup"), "{bob_schedules}");
    // bob started no task: he sees none, and not the admin's
    let bob_tasks = html(&get(&t, "/ui/tasks/", Some(BOB), None).await, StatusCode::OK);
    assert!(!bob_tasks.contains("data-task="), "{bob_tasks}");
    let admin_tasks = t.admin(Method::GET, "/pulp/api/v3/tasks/", None).await;
    let task_id = id_of(admin_tasks["results"][0]["pulp_href"].as_str().unwrap()).to_owned();
    html(
        &get(&t, &format!("/ui/tasks/{task_id}/"), admin, None).await,
        StatusCode::OK,
    );
    html(
        &get(&t, &format!("/ui/tasks/{task_id}/"), Some(BOB), None).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn pages_show_what_each_user_may_view_with_tokens() {
    pages_show_what_each_user_may_view(true, Store::Memory).await;
}

#[tokio::test]
async fn pages_show_what_each_user_may_view_with_basic_auth() {
    pages_show_what_each_user_may_view(false, Store::Memory).await;
}

#[tokio::test]
async fn pages_show_what_each_user_may_view_on_the_embedded_store() {
    pages_show_what_each_user_may_view(true, Store::Embedded).await;
}

#[cfg(feature = "moto")]
#[tokio::test]
async fn pages_show_what_each_user_may_view_on_aws() {
    pages_show_what_each_user_may_view(false, Store::Aws).await;
}

/// Pushes a blob as the admin.
async fn blob(t: &T, auth: Option<&str>, name: &str, bytes: &[u8]) -> Value {
    let d = Digest::sha256_of(bytes);
    let r = t
        .registry(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?digest={d}"),
            auth,
            None,
            bytes.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    json!({"digest": d, "size": bytes.len()})
}

/// Pushes manifest `m` of type `ty` as `reference`; its digest and size.
async fn manifest(t: &T, auth: Option<&str>, name: &str, reference: &str, ty: &str, m: Value) -> (String, usize) {
    let bytes = serde_json::to_vec(&m).unwrap();
    let r = t
        .registry(
            Method::PUT,
            &format!("/v2/{name}/manifests/{reference}"),
            auth,
            Some(ty),
            bytes.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    (Digest::sha256_of(&bytes).to_string(), bytes.len())
}

#[tokio::test]
async fn a_version_shows_its_tags_platforms_sizes_and_changes() {
    let t = T::new(false, Store::Memory).await;
    let name = "team/multi";
    let auth = t
        .registry_auth(Some(("admin", PW)), &format!("repository:{name}:pull,push"))
        .await;
    let auth = auth.as_deref();
    // Given an index of two platforms (a 1000- and a 3000-byte layer), then a single image
    let mut children = Vec::new();
    for (arch, layer_size) in [("amd64", 1000), ("arm64", 3000)] {
        let config = blob(
            &t,
            auth,
            name,
            format!("{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}").as_bytes(),
        )
        .await;
        let layer = blob(&t, auth, name, &vec![arch.as_bytes()[1]; layer_size]).await;
        let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer["digest"], "size": layer["size"]}]});
        let (d, size) = manifest(&t, auth, name, &format!("only-{arch}"), media::OCI_MANIFEST, m).await;
        children.push(json!({"mediaType": media::OCI_MANIFEST, "digest": d, "size": size,
                             "platform": {"os": "linux", "architecture": arch}}));
    }
    let index = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": children});
    let (index_digest, _) = manifest(&t, auth, name, "multi", media::OCI_INDEX, index).await;
    assert_eq!(t.push(Some(("admin", PW)), name, "multi").await, StatusCode::CREATED);

    let repo = t
        .admin(
            Method::GET,
            &format!("/pulp/api/v3/repositories/container/container-push/?name={name}"),
            None,
        )
        .await["results"][0]
        .clone();
    let id = id_of(repo["pulp_href"].as_str().unwrap()).to_owned();
    let admin = Some(("admin", PW));
    // version 3 tagged the index as multi: its platforms, each child's size, the total
    let v3 = html(
        &get(&t, &format!("/ui/repositories/{id}/versions/3/"), admin, None).await,
        StatusCode::OK,
    );
    assert!(
        v3.contains(&format!("data-tag=\"multi\" data-digest=\"{index_digest}\"")),
        "{v3}"
    );
    assert!(v3.contains("linux/amd64") && v3.contains("linux/arm64"), "{v3}");
    let config_len = |arch: &str| format!("{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}").len() as u64;
    let (amd, arm) = (1000 + config_len("amd64"), 3000 + config_len("arm64"));
    assert!(v3.contains(&format!("title=\"{} bytes", amd + arm)), "{v3}");
    assert!(
        v3.contains("<li data-tag=\"multi\">"),
        "multi is among the tags added: {v3}"
    );
    // version 4 moved multi to a single image: it removed the index's tag and added the new one
    let v4 = html(
        &get(&t, &format!("/ui/repositories/{id}/versions/4/"), admin, None).await,
        StatusCode::OK,
    );
    let removed = v4.split("Tags removed").nth(1).unwrap();
    assert!(removed.contains(&index_digest), "{v4}");
    assert!(
        v4.contains("data-type=\"container.tag\"><td data-label=\"Type\">Tags</td><td data-label=\"Present\">3</td>"),
        "{v4}"
    );
    // the repository lists its versions with what each added and removed
    let page = html(
        &get(&t, &format!("/ui/repositories/{id}/"), admin, None).await,
        StatusCode::OK,
    );
    for n in 0..=4 {
        assert!(page.contains(&format!("data-version=\"{n}\"")), "{page}");
    }
    assert!(page.contains("−1 tag"), "{page}");
    assert!(page.contains("podman pull reg.test:5000/team/multi"), "{page}");
    // a version that does not exist, a page past the end, a bad offset
    html(
        &get(&t, &format!("/ui/repositories/{id}/versions/5/"), admin, None).await,
        StatusCode::NOT_FOUND,
    );
    let past = html(
        &get(&t, &format!("/ui/repositories/{id}/?tags=50"), admin, None).await,
        StatusCode::OK,
    );
    assert!(past.contains("none past 50 of 3"), "{past}");
    for far in [
        "/ui/?pushed=18446744073709551615",
        "/ui/distributions/?offset=18446744073709551615",
    ] {
        html(&get(&t, far, admin, None).await, StatusCode::OK);
    }
    let far = format!("/ui/repositories/{id}/?versions=18446744073709551615&tags=18446744073709551615");
    html(&get(&t, &far, admin, None).await, StatusCode::OK);
    let bad = html(&get(&t, "/ui/?synced=x", admin, None).await, StatusCode::BAD_REQUEST);
    assert!(bad.contains("synced"), "{bad}");
}

async fn logins_by_form_and_basic_credentials(token_auth: bool) {
    let t = T::new(token_auth, Store::Memory).await;
    make_users(&t).await;

    // anonymous: a browser is sent to the login form, other clients are challenged
    let r = get(&t, "/ui/tasks/?offset=0", None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/ui/login?next=%2Fui%2Ftasks%2F%3Foffset%3D0");
    let r = Req::get("/ui/").header("host", HOST).send(&t.router).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge(), "Basic realm=\"berth\"");
    let r = Req::get("/ui").header("host", HOST).send(&t.router).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, "/ui/"));
    // Basic credentials: right, wrong, malformed
    html(&get(&t, "/ui/", Some(ALICE), None).await, StatusCode::OK);
    let r = get(&t, "/ui/", Some(("alice", "wrong-password")), None).await;
    assert_eq!(r.challenge(), "Basic realm=\"berth\"");
    html(&r, StatusCode::UNAUTHORIZED);
    let r = Req::get("/ui/")
        .header("host", HOST)
        .header("authorization", "Basic !!!")
        .send(&t.router)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // the assets need no login
    let r = Req::get("/ui/static/berth.css").send(&t.router).await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (StatusCode::OK, "text/css; charset=utf-8")
    );
    let r = Req::get("/ui/static/berth.js").send(&t.router).await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );

    // the form: shown, refused from elsewhere, a wrong password refused, a right one logs in
    let form = html(
        &get(&t, "/ui/login?next=/ui/remotes/", None, None).await,
        StatusCode::OK,
    );
    assert!(form.contains("name=\"next\" value=\"/ui/remotes/\""), "{form}");
    let body = "username=alice&password=wonderland-1";
    for (name, value) in [
        ("origin", "http://evil.test"),
        ("referer", "http://evil.test/ui/login"),
        ("x-none", ""),
    ] {
        let r = Req::new(Method::POST, "/ui/login")
            .header("host", HOST)
            .header(name, value)
            .body(body)
            .send(&t.router)
            .await;
        html(&r, StatusCode::FORBIDDEN);
        assert_eq!(r.header("set-cookie"), "", "{name}");
    }
    let r = post_login(&t, "alice", "wrong-password", "/ui/").await;
    let page = html(&r, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Invalid user name or password."), "{page}");
    assert!(page.contains("value=\"alice\""), "{page}");
    assert_eq!(r.header("set-cookie"), "");
    let r = post_login(&t, "", "", "/ui/").await;
    html(&r, StatusCode::BAD_REQUEST);
    let r = post_login(&t, "alice", "wonderland-1", "/ui/remotes/").await;
    assert_eq!(r.header("location"), "/ui/remotes/");
    let set = r.header("set-cookie").to_owned();
    for attr in ["; Path=/ui", "; HttpOnly", "; SameSite=Strict", "; Max-Age=43200"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP here: {set}");
    let session = session_of(&r);
    let page = html(&get(&t, "/ui/remotes/", None, Some(&session)).await, StatusCode::OK);
    assert!(page.contains("<span class=\"user\">alice</span>"), "{page}");
    assert!(page.contains("action=\"/ui/logout\""), "{page}");
    // an open redirect is no place to return to
    let r = post_login(&t, "alice", "wonderland-1", "https://evil.test/").await;
    assert_eq!(r.header("location"), "/ui/");
    // a changed cookie is no session
    let mut forged = session.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let r = get(&t, "/ui/", None, Some(&String::from_utf8(forged).unwrap())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // logout: from the page only; it clears the cookie
    let r = Req::new(Method::POST, "/ui/logout")
        .header("host", HOST)
        .header("origin", "http://evil.test")
        .send(&t.router)
        .await;
    html(&r, StatusCode::FORBIDDEN);
    let r = Req::new(Method::POST, "/ui/logout")
        .header("host", HOST)
        .header("origin", ORIGIN)
        .header("cookie", &format!("berth_session={session}"))
        .send(&t.router)
        .await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, "/ui/login"));
    assert!(
        r.header("set-cookie")
            .starts_with("berth_session=; Path=/ui; Max-Age=0"),
        "{}",
        r.header("set-cookie")
    );
    let r = Req::get("/ui/logout").header("host", HOST).send(&t.router).await;
    assert_eq!((r.status, r.header("allow")), (StatusCode::METHOD_NOT_ALLOWED, "POST"));

    // a password set again ends the session
    let bob = post_login(&t, "bob", BOB.1, "/ui/").await;
    let bob_session = session_of(&bob);
    html(&get(&t, "/ui/", None, Some(&bob_session)).await, StatusCode::OK);
    let users = t.admin(Method::GET, &format!("{USERS}?username=bob"), None).await;
    let href = users["results"][0]["pulp_href"].as_str().unwrap().to_owned();
    t.admin(Method::PATCH, &href, Some(json!({"password": BOB.1}))).await;
    assert_eq!(
        get(&t, "/ui/", None, Some(&bob_session)).await.status,
        StatusCode::SEE_OTHER
    );

    // over HTTPS (a proxy in front says so) the cookie is Secure; the origin is https
    let r = Req::new(Method::POST, "/ui/login")
        .header("host", HOST)
        .header("x-forwarded-proto", "https")
        .header("origin", "https://reg.test:5000")
        .body("username=alice&password=wonderland-1")
        .send(&t.router)
        .await;
    assert!(r.header("set-cookie").ends_with("; Secure"), "{}", r.text());

    // the page is read-only; unknown pages are 404 pages
    let r = Req::new(Method::POST, "/ui/")
        .header("host", HOST)
        .send(&t.router)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    for path in [
        "/ui/nothing",
        "/ui/repositories/not-an-id/",
        "/ui/tasks/00000000-0000-0000-0000-000000000000/",
    ] {
        let r = get(&t, path, Some(ALICE), None).await;
        html(&r, StatusCode::NOT_FOUND);
    }
    let r = get(
        &t,
        &format!("/ui/repositories/{}/", uuid::Uuid::new_v4()),
        Some(ALICE),
        None,
    )
    .await;
    assert!(html(&r, StatusCode::NOT_FOUND).contains("Not found"));
}

#[tokio::test]
async fn logins_by_form_and_basic_credentials_with_tokens() {
    logins_by_form_and_basic_credentials(true).await;
}

#[tokio::test]
async fn logins_by_form_and_basic_credentials_with_basic_auth() {
    logins_by_form_and_basic_credentials(false).await;
}

#[tokio::test]
async fn failed_logins_through_the_form_are_throttled_as_every_login() {
    // Given the page over users allowed one free failure and no wait for a turn
    let local = LocalApp::in_memory();
    let app = &local.app;
    app.ensure_accounts(Some(PW), &[]).await.unwrap();
    let limits = LoginLimits {
        free_failures: 1,
        max_wait: Duration::ZERO,
        ..LoginLimits::default()
    };
    let users = Arc::new(Users::with_limits(app.store.clone(), limits));
    let ui = router(UiState::new(
        app.manage.clone(),
        users,
        app.accounts.clone(),
        None,
        None,
    ));
    let t = T {
        router: ui,
        token_auth: false,
        _local: LocalApp::in_memory(),
        _dir: None,
    };
    // When the form sends a wrong password twice, Then the second is refused at once, 429
    let r = post_login(&t, "admin", "wrong-password", "/ui/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = post_login(&t, "admin", "wrong-password", "/ui/").await;
    let page = html(&r, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many failed logins"), "{page}");
    assert_eq!(r.header("retry-after"), "1");
    // and so is Basic on a page
    let r = get(&t, "/ui/", Some(("admin", "wrong-password")), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_session_works_on_every_instance_sharing_the_field_key() {
    // Given two instances over one table with the same field key (two Lambda instances)
    let table: Arc<dyn berth::ports::Table> = Arc::new(berth::adapters::memory::MemoryTable::new());
    let blobs: Arc<dyn berth::ports::BlobStore> = Arc::new(berth::adapters::memory::MemoryBlobStore::new());
    let settings = || Settings {
        field_key: Some(Arc::new(FieldKey::from_seed("shared seed"))),
        ..Settings::default()
    };
    let one = LocalApp::over(table.clone(), blobs.clone(), settings());
    one.app.ensure_accounts(Some(PW), &[]).await.unwrap();
    let two = LocalApp::over(table.clone(), blobs.clone(), settings());
    let other_key = LocalApp::over(table, blobs, Settings::default());
    let t1 = T {
        router: one.app.router(),
        token_auth: false,
        _local: one,
        _dir: None,
    };
    let session = session_of(&post_login(&t1, "admin", PW, "/ui/").await);
    // When the other instance gets the cookie, Then it knows the session; one with
    // another key does not
    let r = Req::get("/ui/")
        .header("host", HOST)
        .header("accept", "text/html")
        .header("cookie", &format!("berth_session={session}"))
        .send(&two.app.router())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = Req::get("/ui/")
        .header("host", HOST)
        .header("accept", "text/html")
        .header("cookie", &format!("berth_session={session}"))
        .send(&other_key.app.router())
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // and Basic credentials work on every instance
    let r = Req::get("/ui/")
        .header("host", HOST)
        .header("authorization", &basic("admin", PW))
        .send(&two.app.router())
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

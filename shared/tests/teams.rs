//! Teams and access: users, groups and roles through the management API, and what they allow
//! on the registry and the API, in both registry auth modes (tokens, Basic) and on every
//! store. Every privilege boundary is tried from the wrong side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth::app::{LocalApp, Settings};
use berth::domain::{media, Digest};
use berth::services::tokens::{TokenKey, Tokens};
use berth::services::AuthMode;
use common::http::{basic, bearer, Req, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const HOST: &str = "reg.test:5000";
const PW: &str = "admin-pw";
const USERS: &str = "/pulp/api/v3/users/";
const GROUPS: &str = "/pulp/api/v3/groups/";
const NS: &str = "/pulp/api/v3/pulp_container/namespaces/";
const DISTS: &str = "/pulp/api/v3/distributions/container/container/";
const REPOS: &str = "/pulp/api/v3/repositories/container/container/";

struct T {
    router: Router,
    token_auth: bool,
    _local: LocalApp,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy)]
enum Store {
    Memory,
    Embedded,
    #[cfg(feature = "moto")]
    Aws,
}

impl T {
    async fn new(token_auth: bool, store: Store) -> T {
        let auth = if token_auth {
            AuthMode::Token(Arc::new(Tokens::new(TokenKey::generate(), Duration::from_secs(300))))
        } else {
            AuthMode::Basic
        };
        let settings = Settings {
            auth,
            ..Default::default()
        };
        let (local, dir) = match store {
            Store::Memory => (LocalApp::in_memory_with(settings), None),
            Store::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                (LocalApp::embedded(dir.path(), settings).await.unwrap(), Some(dir))
            }
            #[cfg(feature = "moto")]
            Store::Aws => {
                let sdk =
                    berth::adapters::aws::sdk_config_for(&common::moto::endpoint(), "us-east-1", "testing", "testing")
                        .await;
                let table = berth::adapters::dynamo_table::DynamoTable::new(&sdk, common::moto::unique("table"));
                table.create_if_missing().await.unwrap();
                let blobs = berth::adapters::s3_blobs::S3BlobStore::new(&sdk, common::moto::unique("bucket"), true);
                blobs.create_bucket_if_missing().await.unwrap();
                (LocalApp::over(Arc::new(table), Arc::new(blobs), settings), None)
            }
        };
        local.app.ensure_accounts(Some(PW), &[]).await.unwrap();
        T {
            router: local.app.router(),
            token_auth,
            _local: local,
            _dir: dir,
        }
    }

    async fn api(&self, method: Method, uri: &str, who: (&str, &str), body: Option<Value>) -> Resp {
        let mut r = Req::new(method, uri).header("host", HOST).basic(who.0, who.1);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send(&self.router).await
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> Value {
        let r = self.api(method, uri, ("admin", PW), body).await;
        assert!(r.status.is_success(), "{uri}: {} {}", r.status, r.text());
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// The Authorization header `who` sends for `scope` on the registry.
    async fn registry_auth(&self, who: Option<(&str, &str)>, scope: &str) -> Option<String> {
        if !self.token_auth {
            return who.map(|(u, p)| basic(u, p));
        }
        let auth = who.map(|(u, p)| basic(u, p));
        let r = Req::new(Method::GET, &format!("/token?service={HOST}&scope={scope}"))
            .header("host", HOST)
            .auth(auth.as_deref())
            .send(&self.router)
            .await;
        if r.status != StatusCode::OK {
            return Some("Bearer invalid".into());
        }
        Some(bearer(r.json()["token"].as_str().unwrap()))
    }

    async fn registry(&self, method: Method, uri: &str, auth: Option<&str>, ct: Option<&str>, body: Vec<u8>) -> Resp {
        let mut r = Req::new(method, uri).header("host", HOST).auth(auth).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send(&self.router).await
    }

    /// Pushes a one-layer image as `who`: the status of the first refused request, or 201.
    async fn push(&self, who: Option<(&str, &str)>, name: &str, tag: &str) -> StatusCode {
        let auth = self.registry_auth(who, &format!("repository:{name}:pull,push")).await;
        let layer = format!("layer of {name}").into_bytes();
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        for b in [&config, &layer] {
            let d = Digest::sha256_of(b);
            let r = self
                .registry(
                    Method::POST,
                    &format!("/v2/{name}/blobs/uploads/?digest={d}"),
                    auth.as_deref(),
                    None,
                    b.clone(),
                )
                .await;
            if r.status != StatusCode::CREATED {
                return r.status;
            }
        }
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": Digest::sha256_of(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256_of(&layer), "size": layer.len()}],
        }))
        .unwrap();
        self.registry(
            Method::PUT,
            &format!("/v2/{name}/manifests/{tag}"),
            auth.as_deref(),
            Some(media::OCI_MANIFEST),
            m,
        )
        .await
        .status
    }

    /// Pulls a manifest as `who`.
    async fn pull(&self, who: Option<(&str, &str)>, name: &str, tag: &str) -> Resp {
        let auth = self.registry_auth(who, &format!("repository:{name}:pull")).await;
        self.registry(
            Method::GET,
            &format!("/v2/{name}/manifests/{tag}"),
            auth.as_deref(),
            None,
            vec![],
        )
        .await
    }

    async fn catalog(&self, who: Option<(&str, &str)>) -> Vec<String> {
        let auth = self.registry_auth(who, "registry:catalog:*").await;
        let r = self
            .registry(Method::GET, "/v2/_catalog", auth.as_deref(), None, vec![])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        serde_json::from_value(r.json()["repositories"].clone()).unwrap()
    }

    async fn dist_href(&self, base_path: &str) -> String {
        let r = self
            .admin(Method::GET, &format!("{DISTS}?base_path={base_path}"), None)
            .await;
        r["results"][0]["pulp_href"].as_str().unwrap().to_owned()
    }

    async fn names(&self, who: (&str, &str), list: &str, key: &str) -> Vec<String> {
        let r = self.api(Method::GET, list, who, None).await;
        assert_eq!(r.status, StatusCode::OK, "{list}: {}", r.text());
        r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[key].as_str().unwrap().to_owned())
            .collect()
    }
}

const ALICE: (&str, &str) = ("alice", "wonderland-1");
const BOB: (&str, &str) = ("bob", "builder-222");
const CAROL: (&str, &str) = ("carol", "sunrise-333");

fn denied(s: StatusCode) -> bool {
    s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN
}

async fn a_team_owns_its_namespace(token_auth: bool, store: Store) {
    let t = T::new(token_auth, store).await;
    // Given users alice, bob and carol, a group with bob in it, and namespaces team-a, team-b
    let mut users = std::collections::HashMap::new();
    for (name, pw) in [ALICE, BOB, CAROL] {
        let u = t
            .admin(Method::POST, USERS, Some(json!({"username": name, "password": pw})))
            .await;
        assert_eq!(u["username"], name);
        assert!(u.get("password").is_none(), "passwords are never shown");
        assert_eq!(u["hidden_fields"], json!([{"name": "password", "is_set": true}]));
        users.insert(name, u["pulp_href"].as_str().unwrap().to_owned());
    }
    let readers = t.admin(Method::POST, GROUPS, Some(json!({"name": "readers-a"}))).await;
    let readers_href = readers["pulp_href"].as_str().unwrap().to_owned();
    let r = t
        .admin(
            Method::POST,
            &format!("{readers_href}users/"),
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(r["username"], "bob");
    let team_a = t.admin(Method::POST, NS, Some(json!({"name": "team-a"}))).await;
    let team_a = team_a["pulp_href"].as_str().unwrap().to_owned();
    t.admin(Method::POST, NS, Some(json!({"name": "team-b"}))).await;
    // alice owns team-a; the group consumes it
    let r = t
        .admin(
            Method::POST,
            &format!("{team_a}add_role/"),
            Some(json!({"role": "container.containernamespace_owner", "users": ["alice"], "groups": []})),
        )
        .await;
    assert_eq!(r["users"], json!(["alice"]));
    t.admin(
        Method::POST,
        &format!("{team_a}add_role/"),
        Some(json!({"role": "container.containernamespace_consumer", "users": [], "groups": ["readers-a"]})),
    )
    .await;
    let roles = t.admin(Method::GET, &format!("{team_a}list_roles/"), None).await;
    assert_eq!(
        roles,
        json!({"roles": [
            {"role": "container.containernamespace_consumer", "users": [], "groups": ["readers-a"]},
            // its maker owns it too, as in Pulp
            {"role": "container.containernamespace_owner", "users": ["admin", "alice"], "groups": []},
        ]})
    );

    // When alice pushes to team-a, Then it lands; she cannot push to team-b
    assert_eq!(t.push(Some(ALICE), "team-a/app", "1").await, StatusCode::CREATED);
    assert!(denied(t.push(Some(ALICE), "team-b/app", "1").await));
    assert_eq!(
        t.push(Some(("admin", PW)), "team-b/app", "1").await,
        StatusCode::CREATED
    );
    // alice makes her distribution private (namespace owners change its distributions)
    let a_app = t.dist_href("team-a/app").await;
    let r = t
        .api(Method::PATCH, &a_app, ALICE, Some(json!({"private": true})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let b_app = t.dist_href("team-b/app").await;
    let r = t
        .api(Method::PATCH, &b_app, ALICE, Some(json!({"private": true})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "team-b/app is public: alice sees it");
    t.admin(Method::PATCH, &b_app, Some(json!({"private": true}))).await;
    let r = t.api(Method::GET, &b_app, ALICE, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a private distribution is not shown");

    // bob (a consumer through his group) pulls the private image and cannot push
    assert_eq!(t.pull(Some(BOB), "team-a/app", "1").await.status, StatusCode::OK);
    assert!(denied(t.push(Some(BOB), "team-a/app", "2").await));
    assert!(denied(t.push(Some(BOB), "team-a/other", "1").await));
    // nobody else pulls it
    assert!(denied(t.pull(Some(CAROL), "team-a/app", "1").await.status));
    assert!(denied(t.pull(None, "team-a/app", "1").await.status));
    assert!(denied(t.pull(Some(BOB), "team-b/app", "1").await.status));
    // what each sees: the catalog and the API's lists
    assert_eq!(t.catalog(Some(BOB)).await, ["team-a/app"]);
    assert_eq!(t.catalog(Some(ALICE)).await, ["team-a/app"]);
    assert!(t.catalog(Some(CAROL)).await.is_empty());
    assert!(t.catalog(None).await.is_empty());
    assert_eq!(t.catalog(Some(("admin", PW))).await, ["team-a/app", "team-b/app"]);
    assert_eq!(t.names(BOB, DISTS, "base_path").await, ["team-a/app"]);
    assert_eq!(t.names(BOB, NS, "name").await, ["team-a"]);
    assert!(t.names(CAROL, DISTS, "base_path").await.is_empty());
    assert!(t
        .names(CAROL, "/pulp/api/v3/repositories/container/container-push/", "name")
        .await
        .is_empty());
    assert_eq!(
        t.names(BOB, "/pulp/api/v3/repositories/container/container-push/", "name")
            .await,
        ["team-a/app"]
    );
    // tags and content of team-b do not leak
    let auth = t.registry_auth(Some(BOB), "repository:team-b/app:pull").await;
    let r = t
        .registry(Method::GET, "/v2/team-b/app/tags/list", auth.as_deref(), None, vec![])
        .await;
    assert!(denied(r.status) && !r.text().contains("\"1\""), "{}", r.text());
    let r = t
        .api(Method::GET, "/pulp/api/v3/content/container/tags/", CAROL, None)
        .await;
    assert_eq!(r.json()["count"], 0, "carol sees no content");
    let r = t
        .api(Method::GET, "/pulp/api/v3/content/container/tags/", BOB, None)
        .await;
    assert_eq!(r.json()["count"], 1, "bob sees team-a's tag: {}", r.text());

    // a user cannot give himself a role, on the API or on an object he does not manage
    let bob_href = &users["bob"];
    let r = t
        .api(
            Method::POST,
            &format!("{bob_href}roles/"),
            BOB,
            Some(json!({"role": "container.containernamespace_owner", "content_object": team_a})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .api(
            Method::POST,
            &format!("{team_a}add_role/"),
            BOB,
            Some(json!({"role": "container.containernamespace_collaborator", "users": ["bob"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t.api(Method::GET, USERS, BOB, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "users are superusers' business");
    // the owner may give roles on her namespace
    let r = t
        .api(
            Method::POST,
            &format!("{team_a}add_role/"),
            ALICE,
            Some(json!({"role": "container.containernamespace_collaborator", "users": ["carol"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(t.push(Some(CAROL), "team-a/app", "2").await, StatusCode::CREATED);

    // a push to a namespace named as the user makes it, and the user owns it
    assert_eq!(t.push(Some(CAROL), "carol/tool", "1").await, StatusCode::CREATED);
    let carol_ns = t.names(CAROL, NS, "name").await;
    assert!(carol_ns.contains(&"carol".to_owned()), "{carol_ns:?}");
    assert!(denied(t.push(Some(BOB), "carol/tool", "2").await));

    // bad input: unknown roles, objects and users are Pulp's 400s
    let r = t
        .api(
            Method::POST,
            &format!("{team_a}add_role/"),
            ("admin", PW),
            Some(json!({"role": "container.nope", "users": ["bob"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"role": ["Object with name=container.nope does not exist."]})
    );
    let r = t
        .api(
            Method::POST,
            &format!("{team_a}add_role/"),
            ("admin", PW),
            Some(json!({"role": "container.containernamespace_consumer", "users": ["nobody"]})),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"users": {"0": ["Object with username=nobody does not exist."]}})
    );
    let r = t
        .api(
            Method::POST,
            &format!("{bob_href}roles/"),
            ("admin", PW),
            Some(json!({"role": "container.containernamespace_owner", "content_object": format!("{NS}{}/", uuid::Uuid::new_v4())})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = t
        .api(
            Method::POST,
            &format!("{bob_href}roles/"),
            ("admin", PW),
            Some(json!({"role": "container.containerremote_owner", "content_object": team_a})),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"non_field_errors": ["The role 'container.containerremote_owner' does not carry any permission for that object."]})
    );
    let r = t
        .api(
            Method::POST,
            USERS,
            ("admin", PW),
            Some(json!({"username": "dave", "password": "123"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["non_field_errors"][0],
        "This password is too short. It must contain at least 8 characters."
    );
    let r = t
        .api(
            Method::POST,
            USERS,
            ("admin", PW),
            Some(json!({"username": "bob", "password": "x-long-pass"})),
        )
        .await;
    assert_eq!(r.json(), json!({"username": ["This field must be unique."]}));

    // When bob leaves the group, Then he no longer pulls (a token already issued works until
    // it expires: its access was granted when it was issued)
    let bob_id = bob_href.trim_end_matches('/').rsplit('/').next().unwrap();
    let r = t
        .api(
            Method::DELETE,
            &format!("{readers_href}users/{bob_id}/"),
            ("admin", PW),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(denied(t.pull(Some(BOB), "team-a/app", "1").await.status));
    assert_eq!(
        t.catalog(Some(BOB)).await,
        ["carol/tool"],
        "a pushed distribution is public"
    );

    // When carol is deleted, Then her token stops working and her password too
    let token = t.registry_auth(Some(CAROL), "repository:team-a/app:pull").await;
    let r = t
        .registry(
            Method::GET,
            "/v2/team-a/app/manifests/1",
            token.as_deref(),
            None,
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    t.admin(Method::DELETE, &users["carol"], None).await;
    let r = t
        .registry(
            Method::GET,
            "/v2/team-a/app/manifests/1",
            token.as_deref(),
            None,
            vec![],
        )
        .await;
    assert!(denied(r.status), "{}", r.status);
    let r = t.api(Method::GET, DISTS, CAROL, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // the roles she held are gone with her
    let roles = t.admin(Method::GET, &format!("{team_a}list_roles/"), None).await;
    assert!(!roles.to_string().contains("carol"), "{roles}");
}

#[tokio::test]
async fn a_team_owns_its_namespace_with_tokens() {
    a_team_owns_its_namespace(true, Store::Memory).await;
}

#[tokio::test]
async fn a_team_owns_its_namespace_with_basic_auth() {
    a_team_owns_its_namespace(false, Store::Memory).await;
}

#[tokio::test]
async fn a_team_owns_its_namespace_on_the_embedded_store() {
    a_team_owns_its_namespace(true, Store::Embedded).await;
}

#[cfg(feature = "moto")]
#[tokio::test]
async fn a_team_owns_its_namespace_on_aws() {
    a_team_owns_its_namespace(true, Store::Aws).await;
    a_team_owns_its_namespace(false, Store::Aws).await;
}

#[tokio::test]
async fn repositories_and_remotes_belong_to_their_creators() {
    let t = T::new(true, Store::Memory).await;
    t.admin(
        Method::POST,
        USERS,
        Some(json!({"username": "alice", "password": ALICE.1})),
    )
    .await;
    let u = t
        .admin(Method::POST, USERS, Some(json!({"username": "bob", "password": BOB.1})))
        .await;
    let bob = u["pulp_href"].as_str().unwrap().to_owned();
    // Given alice may make repositories and remotes
    let alice = t.admin(Method::GET, &format!("{USERS}?username=alice"), None).await;
    let alice = alice["results"][0]["pulp_href"].as_str().unwrap().to_owned();
    for role in [
        "container.containerrepository_creator",
        "container.containerremote_creator",
    ] {
        let r = t
            .admin(
                Method::POST,
                &format!("{alice}roles/"),
                Some(json!({"role": role, "content_object": null})),
            )
            .await;
        assert_eq!(r["content_object"], Value::Null);
    }
    // When she makes a repository, Then she owns it; bob sees nothing of it
    let r = t.api(Method::POST, REPOS, ALICE, Some(json!({"name": "hers"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let repo = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let r = t.api(Method::GET, &format!("{repo}my_permissions/"), ALICE, None).await;
    assert!(r.json()["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("container.sync_containerrepository")));
    assert_eq!(t.names(ALICE, REPOS, "name").await, ["hers"]);
    assert!(t.names(BOB, REPOS, "name").await.is_empty());
    let r = t.api(Method::GET, &repo, BOB, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.api(Method::DELETE, &repo, BOB, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.api(Method::POST, REPOS, BOB, Some(json!({"name": "his"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // a viewer role shows it, and only that
    t.admin(
        Method::POST,
        &format!("{repo}add_role/"),
        Some(json!({"role": "container.containerrepository_viewer", "users": ["bob"]})),
    )
    .await;
    assert_eq!(t.api(Method::GET, &repo, BOB, None).await.status, StatusCode::OK);
    let r = t
        .api(Method::PATCH, &repo, BOB, Some(json!({"description": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t.api(Method::GET, &format!("{bob}roles/"), ("admin", PW), None).await;
    assert_eq!(r.json()["count"], 1);
    assert_eq!(r.json()["results"][0]["content_object"], repo);
    // a distribution may serve only a repository its maker sees
    let r = t
        .api(
            Method::POST,
            DISTS,
            ("carol", "x"),
            Some(json!({"name": "x", "base_path": "x", "repository": repo})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .api(
            Method::POST,
            DISTS,
            BOB,
            Some(json!({"name": "bob", "base_path": "bob/serve", "repository": repo})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "bob's own namespace, a repository he sees: {}",
        r.text()
    );
    // and tasks belong to who started them
    let remote = t
        .api(
            Method::POST,
            "/pulp/api/v3/remotes/container/container/",
            ALICE,
            Some(json!({"name": "r", "url": "http://127.0.0.1:9", "upstream_name": "x"})),
        )
        .await;
    assert_eq!(remote.status, StatusCode::CREATED, "{}", remote.text());
    let r = t
        .api(
            Method::POST,
            &format!("{repo}sync/"),
            ALICE,
            Some(json!({"remote": remote.json()["pulp_href"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let task = r.json()["task"].as_str().unwrap().to_owned();
    assert_eq!(t.api(Method::GET, &task, ALICE, None).await.status, StatusCode::OK);
    assert_eq!(t.api(Method::GET, &task, BOB, None).await.status, StatusCode::NOT_FOUND);
    let r = t.api(Method::GET, "/pulp/api/v3/tasks/", BOB, None).await;
    assert!(!r.text().contains(&task), "bob's task list holds none of alice's");
    // bob may not sync from a remote he cannot see
    let r = t
        .api(
            Method::POST,
            &format!("{repo}sync/"),
            BOB,
            Some(json!({"remote": remote.json()["pulp_href"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_and_grants_make_each_name_and_role_once() {
    let t = Arc::new(T::new(true, Store::Embedded).await);
    // When 16 clients create the same user, and 16 others 16 different users, at once
    let mut racers = Vec::new();
    for i in 0..32 {
        let t = t.clone();
        racers.push(tokio::spawn(async move {
            let name = if i < 16 { "same".to_owned() } else { format!("user{i}") };
            let body = json!({"username": name, "password": "a-long-password"});
            t.api(Method::POST, USERS, ("admin", PW), Some(body)).await
        }));
    }
    let mut same_won = 0;
    let mut ids = std::collections::HashSet::new();
    for (i, r) in racers.into_iter().enumerate() {
        let r = r.await.unwrap();
        if i < 16 {
            match r.status {
                StatusCode::CREATED => same_won += 1,
                StatusCode::BAD_REQUEST => assert_eq!(r.json(), json!({"username": ["This field must be unique."]})),
                s => panic!("{s}: {}", r.text()),
            }
        } else {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        }
        if r.status == StatusCode::CREATED {
            assert!(ids.insert(r.json()["id"].as_u64().unwrap()), "numbers are unique");
        }
    }
    // Then one "same" exists, and every user has its own number
    assert_eq!(same_won, 1);
    assert_eq!(ids.len(), 17);
    let all = t.admin(Method::GET, &format!("{USERS}?limit=1000"), None).await;
    assert_eq!(all["count"], 18, "the admin and 17 users");

    // When 16 clients give the same role to the same user at once, Then exactly one does
    let ns = t.admin(Method::POST, NS, Some(json!({"name": "raced"}))).await;
    let ns = ns["pulp_href"].as_str().unwrap().to_owned();
    let mut racers = Vec::new();
    for _ in 0..16 {
        let (t, ns) = (t.clone(), ns.clone());
        racers.push(tokio::spawn(async move {
            let body = json!({"role": "container.containernamespace_consumer", "users": ["same"]});
            t.api(Method::POST, &format!("{ns}add_role/"), ("admin", PW), Some(body))
                .await
                .status
        }));
    }
    let mut granted = 0;
    for r in racers {
        match r.await.unwrap() {
            StatusCode::CREATED => granted += 1,
            StatusCode::BAD_REQUEST => {}
            s => panic!("{s}"),
        }
    }
    assert_eq!(granted, 1);
    let roles = t.admin(Method::GET, &format!("{ns}list_roles/"), None).await;
    let consumers = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "container.containernamespace_consumer")
        .unwrap()
        .clone();
    assert_eq!(consumers["users"], json!(["same"]));

    // When a user is deleted while roles are being given to him, Then none outlives him
    let doomed = t
        .admin(
            Method::POST,
            USERS,
            Some(json!({"username": "doomed", "password": "a-long-password"})),
        )
        .await;
    let doomed_href = doomed["pulp_href"].as_str().unwrap().to_owned();
    let mut racers = Vec::new();
    for i in 0..8 {
        let (t, ns) = (t.clone(), ns.clone());
        racers.push(tokio::spawn(async move {
            let role = if i % 2 == 0 {
                "container.containernamespace_consumer"
            } else {
                "container.containernamespace_collaborator"
            };
            let body = json!({"role": role, "users": ["doomed"]});
            t.api(Method::POST, &format!("{ns}add_role/"), ("admin", PW), Some(body))
                .await
                .status
        }));
    }
    t.admin(Method::DELETE, &doomed_href, None).await;
    for r in racers {
        let s = r.await.unwrap();
        assert!(s == StatusCode::CREATED || s == StatusCode::BAD_REQUEST, "{s}");
    }
    let roles = t.admin(Method::GET, &format!("{ns}list_roles/"), None).await;
    assert!(!roles.to_string().contains("doomed"), "{roles}");
    let again = t
        .admin(
            Method::POST,
            USERS,
            Some(json!({"username": "doomed", "password": "a-long-password"})),
        )
        .await;
    let again_href = again["pulp_href"].as_str().unwrap();
    assert_ne!(again_href, doomed_href, "a new user of the same name is another user");
    let r = t.admin(Method::GET, &format!("{again_href}roles/"), None).await;
    assert_eq!(r["count"], 0, "nothing given to the old one reaches the new one");
}

#[tokio::test]
async fn groups_belong_to_their_makers_and_inactive_users_are_shut_out() {
    let t = T::new(false, Store::Memory).await;
    for (name, pw) in [ALICE, BOB] {
        t.admin(Method::POST, USERS, Some(json!({"username": name, "password": pw})))
            .await;
    }
    let alice = t.admin(Method::GET, &format!("{USERS}?username=alice"), None).await;
    let alice = alice["results"][0]["pulp_href"].as_str().unwrap().to_owned();
    // Given alice may make groups (a global role, given and taken back and given again)
    let given = t
        .admin(
            Method::POST,
            &format!("{alice}roles/"),
            Some(json!({"role": "core.group_creator", "content_object": null})),
        )
        .await;
    let r = t
        .api(
            Method::POST,
            &format!("{alice}roles/"),
            ("admin", PW),
            Some(json!({"role": "core.group_creator", "content_object": null})),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"non_field_errors": ["The role is already assigned to this user."]})
    );
    let found = t
        .admin(
            Method::GET,
            &format!("{alice}roles/?role=core.group_creator&content_object=null"),
            None,
        )
        .await;
    assert_eq!(found["count"], 1);
    assert_eq!(found["results"][0]["pulp_href"], given["pulp_href"]);
    t.admin(Method::DELETE, given["pulp_href"].as_str().unwrap(), None)
        .await;
    let r = t.api(Method::POST, GROUPS, ALICE, Some(json!({"name": "devs"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the role was taken back");
    t.admin(
        Method::POST,
        &format!("{alice}roles/"),
        Some(json!({"role": "core.group_creator", "content_object": null})),
    )
    .await;
    // When she makes a group, Then she owns it: she adds and removes members, bob cannot
    let r = t.api(Method::POST, GROUPS, ALICE, Some(json!({"name": "devs"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let devs = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let roles = t.api(Method::GET, &format!("{devs}list_roles/"), ALICE, None).await;
    assert_eq!(
        roles.json(),
        json!({"roles": [{"role": "core.group_owner", "users": ["alice"], "groups": []}]})
    );
    let r = t
        .api(
            Method::POST,
            &format!("{devs}users/"),
            ALICE,
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .api(
            Method::POST,
            &format!("{devs}users/"),
            ALICE,
            Some(json!({"username": "nobody"})),
        )
        .await;
    assert_eq!(r.json(), json!(["Could not find user nobody"]));
    assert_eq!(t.names(ALICE, GROUPS, "name").await, ["devs"]);
    assert!(
        t.names(BOB, GROUPS, "name").await.is_empty(),
        "bob is in it, not its viewer"
    );
    let r = t
        .api(
            Method::POST,
            &format!("{devs}users/"),
            BOB,
            Some(json!({"username": "alice"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.api(Method::GET, &format!("{devs}my_permissions/"), ALICE, None).await;
    assert!(r.json()["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("core.change_group")));
    // a group's roles reach its members: the group gets a consumer role on a namespace
    let ns = t.admin(Method::POST, NS, Some(json!({"name": "shared"}))).await;
    let ns = ns["pulp_href"].as_str().unwrap().to_owned();
    let r = t
        .api(
            Method::POST,
            &format!("{devs}roles/"),
            ("admin", PW),
            Some(json!({"role": "container.containernamespace_consumer", "content_object": ns})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(t.names(BOB, NS, "name").await, ["shared"]);
    t.admin(Method::DELETE, &devs, None).await;
    assert!(
        t.names(BOB, NS, "name").await.is_empty(),
        "the group is gone, and what it gave"
    );

    // When alice is made inactive, Then she cannot log in anywhere; active again, she can
    let r = t.admin(Method::PATCH, &alice, Some(json!({"is_active": false}))).await;
    assert_eq!(r["is_active"], false);
    assert_eq!(
        t.api(Method::GET, GROUPS, ALICE, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(denied(t.pull(Some(ALICE), "shared/x", "1").await.status));
    t.admin(Method::PATCH, &alice, Some(json!({"is_active": true}))).await;
    assert_eq!(t.api(Method::GET, GROUPS, ALICE, None).await.status, StatusCode::OK);
    // a new password replaces the old one; a user cannot be renamed; the admin not deleted by itself
    t.admin(Method::PATCH, &alice, Some(json!({"password": "another-secret-9"})))
        .await;
    assert_eq!(
        t.api(Method::GET, GROUPS, ALICE, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.api(Method::GET, GROUPS, ("alice", "another-secret-9"), None)
            .await
            .status,
        StatusCode::OK
    );
    let r = t
        .api(Method::PATCH, &alice, ("admin", PW), Some(json!({"username": "eve"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let me = t.admin(Method::GET, &format!("{USERS}?username=admin"), None).await;
    let r = t
        .api(
            Method::DELETE,
            me["results"][0]["pulp_href"].as_str().unwrap(),
            ("admin", PW),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Two instances over one store (as two Lambda instances over one table): a role given
/// through one counts at once on the other, which last read the caller without it.
async fn a_role_given_elsewhere_counts_at_once(token_auth: bool) {
    let table: Arc<dyn berth::ports::Table> = Arc::new(berth::adapters::memory::MemoryTable::new());
    let blobs: Arc<dyn berth::ports::BlobStore> = Arc::new(berth::adapters::memory::MemoryBlobStore::new());
    let pem = TokenKey::generate().to_pem().unwrap();
    let make = |pem: &str| {
        let key = TokenKey::from_pem(pem).unwrap();
        let auth = if token_auth {
            AuthMode::Token(Arc::new(Tokens::new(key, Duration::from_secs(300))))
        } else {
            AuthMode::Basic
        };
        LocalApp::over(
            table.clone(),
            blobs.clone(),
            Settings {
                auth,
                ..Default::default()
            },
        )
    };
    let (a, b) = (make(&pem), make(&pem));
    a.app.ensure_accounts(Some(PW), &[]).await.unwrap();
    let t = |local: &LocalApp| T {
        router: local.app.router(),
        token_auth,
        _local: LocalApp::in_memory(),
        _dir: None,
    };
    let (ta, tb) = (t(&a), t(&b));
    ta.admin(
        Method::POST,
        USERS,
        Some(json!({"username": "alice", "password": ALICE.1})),
    )
    .await;
    let ns = ta.admin(Method::POST, NS, Some(json!({"name": "elsewhere"}))).await;
    let ns = ns["pulp_href"].as_str().unwrap().to_owned();
    // instance b reads alice without a role
    assert!(denied(tb.push(Some(ALICE), "elsewhere/app", "1").await));
    assert_eq!(
        tb.api(Method::GET, &ns, ALICE, None).await.status,
        StatusCode::NOT_FOUND
    );
    // When instance a gives her the collaborator role, Then instance b lets her push and see
    ta.admin(
        Method::POST,
        &format!("{ns}add_role/"),
        Some(json!({"role": "container.containernamespace_collaborator", "users": ["alice"]})),
    )
    .await;
    assert_eq!(tb.push(Some(ALICE), "elsewhere/app", "1").await, StatusCode::CREATED);
    assert_eq!(tb.api(Method::GET, &ns, ALICE, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_role_given_elsewhere_counts_at_once_with_tokens() {
    a_role_given_elsewhere_counts_at_once(true).await;
}

#[tokio::test]
async fn a_role_given_elsewhere_counts_at_once_with_basic_auth() {
    a_role_given_elsewhere_counts_at_once(false).await;
}

#[tokio::test]
async fn a_distribution_role_reaches_that_distribution_only() {
    let t = T::new(true, Store::Memory).await;
    t.admin(
        Method::POST,
        USERS,
        Some(json!({"username": "carol", "password": CAROL.1})),
    )
    .await;
    // Given two private distributions of one namespace
    for name in ["ops/one", "ops/two"] {
        assert_eq!(t.push(Some(("admin", PW)), name, "1").await, StatusCode::CREATED);
        let href = t.dist_href(name).await;
        t.admin(Method::PATCH, &href, Some(json!({"private": true}))).await;
    }
    let one = t.dist_href("ops/one").await;
    // When carol is a consumer of the first, through the distribution's own roles
    let r = t
        .admin(
            Method::POST,
            &format!("{one}add_role/"),
            Some(json!({"role": "container.containerdistribution_consumer", "users": ["carol"], "groups": []})),
        )
        .await;
    assert_eq!(r["role"], "container.containerdistribution_consumer");
    let r = t
        .api(
            Method::POST,
            &format!("{one}add_role/"),
            ("admin", PW),
            Some(json!({"role": "container.containernamespace_owner", "users": ["carol"]})),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"non_field_errors": ["The role does not contain any permission for that object."]})
    );
    // Then she pulls it, sees it, and nothing of the other; she cannot push to it
    assert_eq!(t.pull(Some(CAROL), "ops/one", "1").await.status, StatusCode::OK);
    assert!(denied(t.pull(Some(CAROL), "ops/two", "1").await.status));
    assert!(denied(t.push(Some(CAROL), "ops/one", "2").await));
    assert_eq!(t.catalog(Some(CAROL)).await, ["ops/one"]);
    assert_eq!(t.names(CAROL, DISTS, "base_path").await, ["ops/one"]);
    let r = t.api(Method::GET, &format!("{one}my_permissions/"), CAROL, None).await;
    assert_eq!(
        r.json(),
        json!({"permissions": ["container.pull_containerdistribution", "container.view_containerdistribution"]})
    );
    // and when the role is taken, she loses it
    t.admin(
        Method::POST,
        &format!("{one}remove_role/"),
        Some(json!({"role": "container.containerdistribution_consumer", "users": ["carol"], "groups": []})),
    )
    .await;
    assert!(denied(t.pull(Some(CAROL), "ops/one", "1").await.status));
    let r = t
        .api(
            Method::POST,
            &format!("{one}remove_role/"),
            ("admin", PW),
            Some(json!({"role": "container.containerdistribution_consumer", "users": ["carol"]})),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"non_field_errors": ["The role is not assigned to user 'carol'."]})
    );
}

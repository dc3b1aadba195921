//! Teams and access: a team owns its namespace, a distribution's roles reach that distribution,
//! and a role given through one instance counts on another; in both registry auth modes and on
//! every store. Every privilege boundary is tried from the wrong side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth::app::{LocalApp, Settings};
use berth::services::tokens::{TokenKey, Tokens};
use berth::services::AuthMode;
use common::teams::*;
use http::{Method, StatusCode};
use serde_json::json;

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

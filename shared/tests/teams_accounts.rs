//! Accounts through the management API: repositories, remotes and groups belong to their
//! makers, inactive users are shut out, and racing creates and grants make each name and role
//! once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::teams::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

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

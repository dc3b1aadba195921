//! Schedules (`task-schedules/`) through the management API and their firing, on every store:
//! made, listed, changed and removed with pulpcore's shapes and Berth's fields; refused with
//! Pulp's field errors; fired once per slot however many firers race; a schedule whose last task
//! is unfinished starts nothing; slots missed while nothing fired are not caught up; the
//! schedules job (what AWS sends every minute) fires them too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use berth::ports::{Job, JobHandler, JobKind, ScheduleTick};
use berth::services::{ORPHAN_CLEANUP_TASK_NAME, SYNC_TASK_NAME};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::pulp::{On, REMOTES, REPOS};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const SCHEDULES: &str = "/pulp/api/v3/task-schedules/";

/// A repository and a remote to sync it from; their hrefs.
async fn repo_and_remote(t: &On, name: &str) -> (String, String) {
    let repo = t.post(REPOS, json!({ "name": name })).await;
    assert_eq!(repo.status, StatusCode::CREATED, "{}", repo.json());
    let remote = t
        .post(
            REMOTES,
            json!({"name": name, "url": "https://registry.example", "upstream_name": "library/x"}),
        )
        .await;
    assert_eq!(remote.status, StatusCode::CREATED, "{}", remote.json());
    (
        repo.json()["pulp_href"].as_str().unwrap().to_owned(),
        remote.json()["pulp_href"].as_str().unwrap().to_owned(),
    )
}

/// A sync of a new repository every 5 s, made by the admin; the schedule's JSON.
async fn often(t: &On) -> Value {
    let (repo, remote) = repo_and_remote(t, "app").await;
    let r = t
        .post(
            SCHEDULES,
            json!({"name": "often", "repository": repo, "remote": remote, "dispatch_interval": "00:00:05"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    r.json()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn schedule(t: &On, href: &str) -> Value {
    let r = t.get(href).await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()
}

async fn task_count(t: &On) -> u64 {
    t.get("/pulp/api/v3/tasks/").await.json()["count"].as_u64().unwrap()
}

async fn schedules_are_made_listed_changed_and_removed(t: On) {
    let (repo, remote) = repo_and_remote(&t, "app").await;
    let before = Utc::now();
    let r = t
        .post(
            SCHEDULES,
            json!({"name": "nightly", "repository": repo, "remote": remote, "dispatch_interval": "00:00:05", "mirror": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let s = r.json();
    assert_eq!(s["task_name"], SYNC_TASK_NAME);
    assert_eq!(s["dispatch_interval"], "00:00:05");
    assert_eq!(s["cron"], Value::Null);
    assert_eq!(s["last_task"], Value::Null);
    assert_eq!(s["enabled"], true);
    assert_eq!(s["mirror"], true);
    assert_eq!(s["signed_only"], false);
    assert_eq!(s["repository"], repo.as_str());
    assert_eq!(s["remote"], remote.as_str());
    let next = time(&s["next_dispatch"]);
    assert!(next >= before.trunc_subsecs(0) + Duration::seconds(5) && next <= Utc::now() + Duration::seconds(5));
    assert_eq!(next.timestamp_subsec_nanos(), 0, "slots are whole seconds");
    let href = s["pulp_href"].as_str().unwrap().to_owned();
    assert!(href.starts_with(SCHEDULES));
    assert_eq!(
        s["prn"],
        format!("prn:core.taskschedule:{}", &href[SCHEDULES.len()..href.len() - 1])
    );

    // an orphan cleanup every day, protecting an hour
    let r = t
        .post(
            SCHEDULES,
            json!({"name": "cleanup", "task_name": ORPHAN_CLEANUP_TASK_NAME, "dispatch_interval": "1 00:00:00", "orphan_protection_time": 60}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["orphan_protection_time"], 60);
    assert_eq!(r.json()["dispatch_interval"], "1 00:00:00");

    // what each bad body gets: Pulp's field errors, and nothing is made
    let bad = [
        (
            json!({"name": "nightly", "repository": repo, "remote": remote, "dispatch_interval": "5"}),
            "name",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": remote, "dispatch_interval": "soon"}),
            "dispatch_interval",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": remote, "dispatch_interval": "0"}),
            "dispatch_interval",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": remote, "cron": "61 * * * *"}),
            "cron",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": remote, "cron": "* * * *"}),
            "cron",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": remote, "cron": "* * * * *", "dispatch_interval": "5"}),
            "cron",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": remote}),
            "dispatch_interval",
        ),
        (
            json!({"name": "x", "repository": "/nope/", "remote": remote, "dispatch_interval": "5"}),
            "repository",
        ),
        (
            json!({"name": "x", "repository": format!("{REPOS}{}/", uuid::Uuid::new_v4()), "remote": remote, "dispatch_interval": "5"}),
            "repository",
        ),
        (
            json!({"name": "x", "repository": repo, "remote": format!("{REMOTES}{}/", uuid::Uuid::new_v4()), "dispatch_interval": "5"}),
            "remote",
        ),
        (
            json!({"name": "x", "repository": repo, "dispatch_interval": "5"}),
            "remote",
        ),
        (
            json!({"name": "x", "task_name": "pulpcore.app.tasks.export", "dispatch_interval": "5"}),
            "task_name",
        ),
        (
            json!({"name": "", "repository": repo, "remote": remote, "dispatch_interval": "5"}),
            "name",
        ),
        (
            json!({"repository": repo, "remote": remote, "dispatch_interval": "5"}),
            "name",
        ),
    ];
    for (body, field) in bad {
        let r = t.post(SCHEDULES, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.json());
        assert!(r.json()[field].is_array(), "{body}: {}", r.json());
    }
    assert_eq!(t.get(SCHEDULES).await.json()["count"], 2);

    // the list: newest first, pulpcore's filters
    let all = t.get(SCHEDULES).await.json();
    assert_eq!(all["results"][0]["name"], "cleanup");
    assert_eq!(all["results"][1]["name"], "nightly");
    let by_name = t.get(&format!("{SCHEDULES}?name=nightly")).await.json();
    assert_eq!(by_name["count"], 1);
    assert_eq!(by_name["results"][0]["pulp_href"], href.as_str());
    let by_task = t.get(&format!("{SCHEDULES}?task_name__contains=orphan")).await.json();
    assert_eq!(by_task["count"], 1);
    assert_eq!(by_task["results"][0]["name"], "cleanup");
    let by_name_order = t.get(&format!("{SCHEDULES}?ordering=name&limit=1")).await.json();
    assert_eq!(by_name_order["results"][0]["name"], "cleanup");
    assert_eq!(by_name_order["count"], 2);
    assert!(by_name_order["next"].is_string());
    let r = t.get(&format!("{SCHEDULES}?ordering=nonsense")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // changes: to a cron expression, disabled, enabled again, renamed
    let r = t
        .patch(&href, json!({"cron": "*/5 * * * *", "dispatch_interval": null}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["cron"], "*/5 * * * *");
    assert_eq!(r.json()["dispatch_interval"], Value::Null);
    let next = time(&r.json()["next_dispatch"]);
    assert_eq!(next.timestamp() % 300, 0, "a multiple of five minutes");
    assert_eq!(r.json()["mirror"], true, "what a partial update leaves out stays");
    let r = t.patch(&href, json!({"enabled": false})).await;
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["next_dispatch"], Value::Null);
    let r = t
        .patch(
            &href,
            json!({"enabled": true, "dispatch_interval": "PT10S", "cron": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["dispatch_interval"], "00:00:10");
    assert!(r.json()["next_dispatch"].is_string());
    let r = t.patch(&href, json!({"name": "cleanup"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["name"].is_array(), "{}", r.json());
    let r = t.patch(&href, json!({"dispatch_interval": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        schedule(&t, &href).await["dispatch_interval"],
        "00:00:10",
        "a refused change changes nothing"
    );
    let r = t.patch(&href, json!({"name": "hourly"})).await;
    assert_eq!(r.json()["name"], "hourly");
    // PUT replaces: what it leaves out takes its default
    let r = t
        .call(
            Method::PUT,
            &href,
            Some(("admin", common::pulp::PW)),
            Some(json!({"name": "hourly", "repository": repo, "remote": remote, "cron": "@hourly"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["mirror"], false);
    assert_eq!(r.json()["cron"], "@hourly");

    // the read-only user (a consumer of every namespace) does not see a repository no
    // distribution serves, so neither its schedule nor the cleanup; and changes nothing
    let reader = Some(("reader", "reader-pw"));
    let listed = t.call(Method::GET, SCHEDULES, reader, None).await.json();
    assert_eq!(listed["count"], 0, "{listed}");
    assert_eq!(
        t.call(Method::GET, &href, reader, None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = t.call(Method::DELETE, &href, reader, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call(
            Method::POST,
            SCHEDULES,
            reader,
            Some(json!({"name": "mine", "task_name": ORPHAN_CLEANUP_TASK_NAME, "dispatch_interval": "5"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = t.delete(&href).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&href).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(SCHEDULES).await.json()["count"], 1);
}

/// A schedule every 5 s: not due before its slot; due, it starts one sync task; while that
/// task is unfinished nothing more starts; once it is, the schedule fires again.
async fn a_due_schedule_fires_once_and_waits_for_its_task(t: On) {
    let s = often(&t).await;
    let href = s["pulp_href"].as_str().unwrap().to_owned();
    let slot = time(&s["next_dispatch"]);
    let manage = t.app.manage.clone();
    let tasks0 = task_count(&t).await;

    let f = manage.fire_schedules(slot - Duration::seconds(1)).await.unwrap();
    assert!(f.started.is_empty());
    let f = manage.fire_schedules(slot).await.unwrap();
    assert_eq!(f.started.len(), 1);
    let s = schedule(&t, &href).await;
    assert_eq!(s["last_task"], format!("/pulp/api/v3/tasks/{}/", f.started[0]));
    assert_eq!(time(&s["next_dispatch"]), slot + Duration::seconds(5));
    let task = t.get(s["last_task"].as_str().unwrap()).await.json();
    assert_eq!(task["name"], SYNC_TASK_NAME);
    assert_eq!(task["state"], "waiting");
    assert_eq!(task_count(&t).await, tasks0 + 1);

    // its task has not run: later slots start nothing
    let f = manage.fire_schedules(slot + Duration::seconds(11)).await.unwrap();
    assert!(f.started.is_empty());
    assert_eq!(f.waiting, 1);
    assert_eq!(task_count(&t).await, tasks0 + 1);

    // the task runs (and fails: the remote's host does not exist); the schedule fires again
    while t.local.jobs.run_one(&*t.app.worker()).await.unwrap().is_some() {}
    let task = t.get(s["last_task"].as_str().unwrap()).await.json();
    assert!(matches!(task["state"].as_str(), Some("failed" | "completed")), "{task}");
    let f = manage.fire_schedules(slot + Duration::seconds(12)).await.unwrap();
    assert_eq!(f.started.len(), 1);
    assert_eq!(task_count(&t).await, tasks0 + 2);
    // back in phase: the slot after 12 s
    assert_eq!(
        time(&schedule(&t, &href).await["next_dispatch"]),
        slot + Duration::seconds(15)
    );
}

/// Down for an hour: the schedule fires once, then at its next slot after now.
async fn a_missed_run_fires_once(t: On) {
    let s = often(&t).await;
    let slot = time(&s["next_dispatch"]);
    let later = slot + Duration::seconds(3600 + 2);
    let f = t.app.manage.fire_schedules(later).await.unwrap();
    assert_eq!(f.started.len(), 1);
    let next = time(&schedule(&t, s["pulp_href"].as_str().unwrap()).await["next_dispatch"]);
    assert_eq!(next, slot + Duration::seconds(3605));
    let f = t.app.manage.fire_schedules(later).await.unwrap();
    assert!(f.started.is_empty());
}

/// Sixteen firers at once (ticks, processes): one task starts.
async fn racing_firers_start_one_task(t: On) {
    let s = often(&t).await;
    let slot = time(&s["next_dispatch"]);
    let tasks0 = task_count(&t).await;
    let manage = t.app.manage.clone();
    let firers: Vec<_> = (0..16)
        .map(|_| {
            let m = manage.clone();
            tokio::spawn(async move { m.fire_schedules(slot).await.unwrap() })
        })
        .collect();
    let mut started = 0;
    for f in firers {
        started += f.await.unwrap().started.len();
    }
    assert_eq!(started, 1);
    assert_eq!(task_count(&t).await, tasks0 + 1);
}

/// The schedules job (what an EventBridge Scheduler schedule sends through SQS on AWS) fires
/// what is due by the worker's clock.
async fn the_schedules_job_fires_what_is_due(t: On) {
    let r = t
        .post(
            SCHEDULES,
            json!({"name": "cleanup", "task_name": ORPHAN_CLEANUP_TASK_NAME, "dispatch_interval": "1", "orphan_protection_time": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let worker: Arc<dyn JobHandler> = t.app.worker();
    let tick = Job::from_json(br#"{"id":"schedules-tick","kind":"schedules","payload":{}}"#).unwrap();
    assert_eq!(tick.kind, JobKind::Schedules(ScheduleTick {}));
    worker.handle(&tick).await.unwrap();
    let s = schedule(&t, r.json()["pulp_href"].as_str().unwrap()).await;
    let task = s["last_task"].as_str().expect("the tick started a task").to_owned();
    while t.local.jobs.run_one(&*worker).await.unwrap().is_some() {}
    let task = t.get(&task).await.json();
    assert_eq!(task["name"], ORPHAN_CLEANUP_TASK_NAME);
    assert_eq!(task["state"], "completed", "{task}");
}

/// A user who may sync a repository schedules its syncs; once that right is taken away, the
/// schedule's next run records a failed task saying why and starts nothing.
async fn a_run_checks_its_owner_still_may(t: On) {
    let (repo, remote) = repo_and_remote(&t, "app").await;
    let pw = "tide-lantern-97-orbit";
    let u = t
        .post("/pulp/api/v3/users/", json!({"username": "carol", "password": pw}))
        .await;
    assert_eq!(u.status, StatusCode::CREATED, "{}", u.json());
    let carol = u.json()["pulp_href"].as_str().unwrap().to_owned();
    let mut grants = Vec::new();
    for (role, object) in [
        ("container.containerrepository_owner", &repo),
        ("container.containerremote_viewer", &remote),
    ] {
        let r = t
            .post(
                &format!("{carol}roles/"),
                json!({"role": role, "content_object": object}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        grants.push(r.json()["pulp_href"].as_str().unwrap().to_owned());
    }
    let who = Some(("carol", pw));
    let body = json!({"name": "carols", "repository": repo, "remote": remote, "dispatch_interval": "5"});
    let r = t.call(Method::POST, SCHEDULES, who, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let href = r.json()["pulp_href"].as_str().unwrap().to_owned();
    assert_eq!(t.call(Method::GET, SCHEDULES, who, None).await.json()["count"], 1);
    // carol may not schedule cleanups
    let r = t
        .call(
            Method::POST,
            SCHEDULES,
            who,
            Some(json!({"name": "c", "task_name": ORPHAN_CLEANUP_TASK_NAME, "dispatch_interval": "5"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    assert_eq!(t.delete(&grants[0]).await.status, StatusCode::NO_CONTENT);
    let slot = time(&schedule(&t, &href).await["next_dispatch"]);
    let f = t.app.manage.fire_schedules(slot).await.unwrap();
    assert_eq!(f.started.len(), 1);
    let task = t.get(&format!("/pulp/api/v3/tasks/{}/", f.started[0])).await.json();
    assert_eq!(task["state"], "failed", "{task}");
    let why = task["error"]["description"].as_str().unwrap();
    assert!(why.contains("carol may no longer run it"), "{why}");
    // nothing was queued for it
    assert!(t.local.jobs.run_one(&*t.app.worker()).await.unwrap().is_none());
}

common::pulp::on_every_store!(
    schedules_are_made_listed_changed_and_removed,
    a_due_schedule_fires_once_and_waits_for_its_task,
    a_missed_run_fires_once,
    racing_firers_start_one_task,
    the_schedules_job_fires_what_is_due,
    a_run_checks_its_owner_still_may,
);

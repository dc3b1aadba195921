//! Router tests for namespaces (`/pulp/api/v3/pulp_container/namespaces/`) and workers
//! (`/pulp/api/v3/workers/`), in process, each case on the in-memory store, the embedded store
//! and (with the `moto` feature) DynamoDB and S3 on moto: a namespace is made by the first
//! distribution or push of its first segment, once however many race; its delete takes its
//! distributions and their push repositories along; workers are the job runner's, with
//! pulpcore's filters, and the status lists the online ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use berth::store::WorkerRecord;
use chrono::{SecondsFormat, TimeDelta, Utc};
use common::pulp::{on_every_store, On, DISTS, PUSH, REPOS, T};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const NS: &str = "/pulp/api/v3/pulp_container/namespaces/";
const WORKERS: &str = "/pulp/api/v3/workers/";

on_every_store!(
    namespaces_list_show_create_and_filter,
    a_namespace_delete_takes_its_distributions_and_push_repositories,
    racing_pushes_and_creates_make_one_namespace,
    workers_are_the_job_runner_s_with_pulpcore_s_filters,
);

/// The names in a list's results, in order.
fn names(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn list_names(t: &T, uri: &str) -> Vec<String> {
    let r = t.get(uri).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
    names(&r.json())
}

/// Creates a distribution through the API; returns it.
async fn create_dist(t: &T, name: &str, base_path: &str, repository: Option<&str>) -> Value {
    let mut body = json!({"name": name, "base_path": base_path});
    if let Some(r) = repository {
        body["repository"] = json!(r);
    }
    let task = t.task(t.post(DISTS, body).await).await;
    assert_eq!(task["state"], "completed", "{task}");
    t.get(task["created_resources"][0].as_str().unwrap()).await.json()
}

async fn namespaces_list_show_create_and_filter(t: On) {
    // Given no namespace yet
    assert_eq!(t.get(NS).await.json()["count"], 0);

    // When one is created, Then it answers 201 with Pulp's fields
    let r = t
        .post(NS, json!({"name": "team", "pulp_labels": {"owner": "ops"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let team = r.json();
    let href = team["pulp_href"].as_str().unwrap().to_owned();
    assert!(href.starts_with(NS) && href.len() == NS.len() + 37, "{href}");
    let id = &href[NS.len()..href.len() - 1];
    assert_eq!(team["prn"], format!("prn:container.containernamespace:{id}"));
    assert_eq!(team["name"], "team");
    assert_eq!(team["pulp_labels"], json!({"owner": "ops"}));
    let mut keys: Vec<&String> = team.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "name",
            "prn",
            "pulp_created",
            "pulp_href",
            "pulp_labels",
            "pulp_last_updated"
        ]
    );
    assert_eq!(t.get(&href).await.json(), team);

    // a name is unique and required
    let r = t.post(NS, json!({"name": "team"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!({"name": ["This field must be unique."]}));
    let r = t.post(NS, json!({})).await;
    assert_eq!(r.json(), json!({"name": ["This field is required."]}));
    let r = t.post(NS, json!({"name": ""})).await;
    assert_eq!(r.json(), json!({"name": ["This field may not be blank."]}));
    // read-only users list but do not create
    let r = t.call(Method::GET, NS, Some(("reader", "reader-pw")), None).await;
    assert_eq!(r.json()["count"], 1);
    let r = t
        .call(
            Method::POST,
            NS,
            Some(("reader", "reader-pw")),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // When distributions are created, Then each belongs to the namespace of its first segment,
    // made when it is new
    let app = create_dist(&t, "app", "team/app", None).await;
    assert_eq!(app["namespace"], href);
    let other = create_dist(&t, "other", "other/deep/x", None).await;
    let other_ns = other["namespace"].as_str().unwrap().to_owned();
    assert_eq!(t.get(&other_ns).await.json()["name"], "other");
    let solo = create_dist(&t, "solo", "solo", None).await;
    assert_eq!(t.get(solo["namespace"].as_str().unwrap()).await.json()["name"], "solo");
    assert_eq!(list_names(&t, NS).await, ["other", "solo", "team"]);

    // and a distribution moved to a new first segment joins its namespace; the old one stays
    let r = t
        .patch(other["pulp_href"].as_str().unwrap(), json!({"base_path": "moved/x"}))
        .await;
    t.task(r).await;
    let moved = t.get(other["pulp_href"].as_str().unwrap()).await.json();
    assert_eq!(
        t.get(moved["namespace"].as_str().unwrap()).await.json()["name"],
        "moved"
    );
    assert_eq!(list_names(&t, NS).await, ["moved", "other", "solo", "team"]);
    // distributions are found by their namespace's name
    let q = format!("{DISTS}?namespace__name=team");
    assert_eq!(list_names(&t, &q).await, ["app"]);

    // Pulp's name lookups, hrefs, PRNs and ordering
    for (q, want) in [
        ("name=team", vec!["team"]),
        ("name__iexact=TEAM", vec!["team"]),
        ("name__in=team,solo", vec!["solo", "team"]),
        ("name__contains=o", vec!["moved", "other", "solo"]),
        ("name__icontains=O", vec!["moved", "other", "solo"]),
        ("name__startswith=mo", vec!["moved"]),
        ("name__istartswith=MO", vec!["moved"]),
        ("name__regex=^(t|s)", vec!["solo", "team"]),
        ("name__iregex=^T", vec!["team"]),
        ("ordering=-name", vec!["team", "solo", "other", "moved"]),
        ("ordering=-pulp_created&limit=1", vec!["moved"]),
    ] {
        assert_eq!(list_names(&t, &format!("{NS}?{q}")).await, want, "{q}");
    }
    let q = format!("{NS}?pulp_href__in={href},{other_ns}");
    assert_eq!(list_names(&t, &q).await, ["other", "team"]);
    let q = format!("{NS}?prn__in=prn:container.containernamespace:{id}");
    assert_eq!(list_names(&t, &q).await, ["team"]);
    let r = t.get(&format!("{NS}?name__regex=(")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!({"name__regex": ["Enter a valid regular expression."]}));
    let r = t.get(&format!("{NS}?ordering=nope")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["ordering"][0].as_str().unwrap().contains("nope"));
    let page = t.get(&format!("{NS}?limit=2&offset=1")).await.json();
    assert_eq!(
        (page["count"].clone(), names(&page)),
        (json!(4), vec!["other".to_owned(), "solo".into()])
    );

    // an unknown namespace is 404; the operations are in the API document with Pulp's ids
    let r = t.get(&format!("{NS}{}/", uuid::Uuid::new_v4())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let doc = t.get("/pulp/api/v3/docs/api.json").await.json();
    assert_eq!(doc["paths"][NS]["get"]["operationId"], "pulp_container_namespaces_list");
    assert_eq!(
        doc["paths"]["{container_container_namespace_href}"]["delete"]["operationId"],
        "pulp_container_namespaces_delete"
    );
}

async fn a_namespace_delete_takes_its_distributions_and_push_repositories(t: On) {
    // Given a push to a new namespace, and a mirror repository served in the same namespace
    t.push_image("shop/web", "v1", b"layer-one").await;
    let dist = &t.get(&format!("{DISTS}?base_path=shop/web")).await.json()["results"][0];
    let ns_href = dist["namespace"].as_str().unwrap().to_owned();
    let ns = t.get(&ns_href).await.json();
    assert_eq!(ns["name"], "shop");
    let push = t.get(PUSH).await.json()["results"][0].clone();
    assert_eq!(push["name"], "shop/web");
    let mirror = t.post(REPOS, json!({"name": "mirror"})).await.json();
    create_dist(&t, "shop-mirror", "shop/mirror", mirror["pulp_href"].as_str()).await;
    let keep = create_dist(&t, "elsewhere", "shopping/x", None).await;

    // a read-only user cannot delete it
    let r = t
        .call(Method::DELETE, &ns_href, Some(("reader", "reader-pw")), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // When the namespace is deleted, Then a task deletes it with its distributions and the push
    // repository one served, as Pulp's general_multi_delete does
    let task = t.task(t.delete(&ns_href).await).await;
    assert_eq!(task["state"], "completed");
    assert_eq!(task["name"], "pulpcore.app.tasks.base.general_multi_delete");
    let reserved: Vec<String> = serde_json::from_value(task["reserved_resources_record"].clone()).unwrap();
    assert!(
        reserved.contains(&ns["prn"].as_str().unwrap().to_owned()),
        "{reserved:?}"
    );
    assert!(
        reserved.contains(&dist["prn"].as_str().unwrap().to_owned()),
        "{reserved:?}"
    );
    assert!(
        reserved.contains(&push["prn"].as_str().unwrap().to_owned()),
        "{reserved:?}"
    );
    assert_eq!(
        reserved.len(),
        4,
        "the namespace, two distributions, one push repository"
    );
    assert_eq!(t.get(&ns_href).await.status, StatusCode::NOT_FOUND);
    let left: Vec<String> = list_names(&t, DISTS).await;
    assert_eq!(left, ["elsewhere"]);
    assert_eq!(t.get(PUSH).await.json()["count"], 0);
    assert_eq!(
        t.get(mirror["pulp_href"].as_str().unwrap()).await.status,
        StatusCode::OK
    );
    assert_eq!(t.get(keep["namespace"].as_str().unwrap()).await.status, StatusCode::OK);
    let r = t.delete(&ns_href).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // the registry no longer serves it; a new push makes a new namespace
    let r = t
        .registry(Method::GET, "/v2/shop/web/manifests/v1", None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    t.push_image("shop/web", "v2", b"layer-two").await;
    let again = list_names(&t, &format!("{NS}?name=shop")).await;
    assert_eq!(again, ["shop"]);
    let new_href = &t.get(&format!("{NS}?name=shop")).await.json()["results"][0]["pulp_href"];
    assert_ne!(new_href, &json!(ns_href));
}

async fn racing_pushes_and_creates_make_one_namespace(t: On) {
    // Given many clients at once: pushes to new base paths, distribution creates and namespace
    // creates, all in one namespace that does not exist yet
    let t = Arc::new(t);
    let mut tasks = Vec::new();
    for i in 0..18 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => {
                    t.push_image(&format!("crowd/app{i}"), "v1", format!("layer {i}").as_bytes())
                        .await;
                    None
                }
                1 => {
                    let r = t
                        .post(
                            DISTS,
                            json!({"name": format!("d{i}"), "base_path": format!("crowd/d{i}")}),
                        )
                        .await;
                    assert_eq!(t.task(r).await["state"], "completed");
                    None
                }
                _ => Some(t.post(NS, json!({"name": "crowd"})).await),
            }
        }));
    }
    let mut created = 0;
    for task in tasks {
        if let Some(r) = task.await.unwrap() {
            match r.status {
                StatusCode::CREATED => created += 1,
                StatusCode::BAD_REQUEST => assert_eq!(r.json(), json!({"name": ["This field must be unique."]})),
                s => panic!("{s}: {}", r.text()),
            }
        }
    }
    // Then there is exactly one namespace, and every distribution is in it
    assert!(created <= 1);
    let listed = t.get(&format!("{NS}?name=crowd")).await.json();
    assert_eq!(listed["count"], 1, "{listed}");
    let href = &listed["results"][0]["pulp_href"];
    let dists = t
        .get(&format!("{DISTS}?base_path__contains=crowd/&limit=100"))
        .await
        .json();
    assert_eq!(dists["count"], 12);
    for d in dists["results"].as_array().unwrap() {
        assert_eq!(&d["namespace"], href, "{}", d["base_path"]);
    }
    assert_eq!(t.get(NS).await.json()["count"], 1);
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn workers_are_the_job_runner_s_with_pulpcore_s_filters(t: On) {
    // Given no job runner yet: no workers, none online
    assert_eq!(t.get(WORKERS).await.json()["count"], 0);
    let status = t.call(Method::GET, "/pulp/api/v3/status/", None, None).await.json();
    assert_eq!(status["online_workers"], json!([]));

    // When a runner of two workers heartbeats, and a worker that stopped an hour ago is known
    let beats = t.app.heartbeats(vec!["1@box".into(), "2@box".into()]);
    beats.beat_all().await;
    let hour_ago = Utc::now() - TimeDelta::hours(1);
    t.app
        .store
        .put_worker(&WorkerRecord {
            id: uuid::Uuid::nil(),
            name: "1@gone".into(),
            created: hour_ago,
            last_heartbeat: hour_ago,
            ttl_secs: 30,
            versions: Default::default(),
            current_task: Some(uuid::Uuid::new_v4()),
        })
        .await
        .unwrap();

    // Then the list has them with pulpcore's fields, the gone one running nothing
    let list = t.get(WORKERS).await.json();
    assert_eq!(list["count"], 3);
    assert_eq!(names(&list), ["1@box", "1@gone", "2@box"]);
    let w = &list["results"][0];
    let href = w["pulp_href"].as_str().unwrap().to_owned();
    assert!(href.starts_with(WORKERS) && href.len() == WORKERS.len() + 37, "{href}");
    let id = &href[WORKERS.len()..href.len() - 1];
    assert_eq!(w["prn"], format!("prn:core.worker:{id}"));
    assert_eq!(w["versions"], json!({"core": "3.85.0", "container": "2.26.0"}));
    assert_eq!(w["current_task"], Value::Null);
    let mut keys: Vec<&String> = w.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "current_task",
            "last_heartbeat",
            "name",
            "prn",
            "pulp_created",
            "pulp_href",
            "pulp_last_updated",
            "versions"
        ]
    );
    assert_eq!(list["results"][1]["current_task"], Value::Null);
    assert_eq!(list["results"][1]["last_heartbeat"], ts(hour_ago));

    // hrefs stay across heartbeats, and show finds the worker
    beats.beat_all().await;
    let again = t.get(WORKERS).await.json();
    assert_eq!(again["results"][0]["pulp_href"], json!(href));
    assert!(again["results"][0]["last_heartbeat"].as_str() > w["last_heartbeat"].as_str());
    assert_eq!(again["results"][0]["pulp_created"], w["pulp_created"]);
    let shown = t.get(&href).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json()["name"], "1@box");
    assert_eq!(
        t.get(&format!("{WORKERS}{}/", uuid::Uuid::new_v4())).await.status,
        StatusCode::NOT_FOUND
    );

    // pulpcore's filters
    let ten_min_ago = ts(Utc::now() - TimeDelta::minutes(10));
    let two_hours_ago = ts(Utc::now() - TimeDelta::hours(2));
    for (q, want) in [
        ("online=true".to_owned(), vec!["1@box", "2@box"]),
        ("online=false".into(), vec!["1@gone"]),
        ("missing=true".into(), vec!["1@gone"]),
        ("missing=false".into(), vec!["1@box", "2@box"]),
        ("name=2@box".into(), vec!["2@box"]),
        ("name__contains=box".into(), vec!["1@box", "2@box"]),
        ("name__icontains=GONE".into(), vec!["1@gone"]),
        ("name__startswith=1@".into(), vec!["1@box", "1@gone"]),
        ("name__regex=^2".into(), vec!["2@box"]),
        (format!("last_heartbeat__lt={ten_min_ago}"), vec!["1@gone"]),
        (format!("last_heartbeat__gte={ten_min_ago}"), vec!["1@box", "2@box"]),
        (
            format!("last_heartbeat__range={two_hours_ago},{ten_min_ago}"),
            vec!["1@gone"],
        ),
        ("last_heartbeat__isnull=true".into(), vec![]),
        ("ordering=last_heartbeat&limit=1".into(), vec!["1@gone"]),
        ("ordering=-name".into(), vec!["2@box", "1@gone", "1@box"]),
    ] {
        let q = q.replace('+', "%2B");
        assert_eq!(list_names(&t, &format!("{WORKERS}?{q}")).await, want, "{q}");
    }
    let r = t.get(&format!("{WORKERS}?last_heartbeat__lt=yesterday")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!({"last_heartbeat__lt": ["Enter a valid date/time."]}));
    let doc = t.get("/pulp/api/v3/docs/api.json").await.json();
    assert_eq!(doc["paths"]["{worker_href}"]["get"]["operationId"], "workers_read");

    // And the status lists exactly the online ones
    let status = t.call(Method::GET, "/pulp/api/v3/status/", None, None).await.json();
    let online: Vec<&str> = status["online_workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(online, ["1@box", "2@box"]);
    assert_eq!(status["online_workers"][0]["pulp_href"], json!(href));

    // A job run by a worker leaves it heartbeating, free again
    let r = t.post("/pulp/api/v3/orphans/cleanup/", json!({})).await;
    let task_href = r.json()["task"].as_str().unwrap().to_owned();
    let handler = beats.attend(t.app.worker());
    assert!(t.local.jobs.run_one(&*handler).await.unwrap().is_some());
    assert_eq!(t.get(&task_href).await.json()["state"], "completed");
    let after = t.get(&href).await.json();
    assert_eq!(after["current_task"], Value::Null);
    assert!(after["last_heartbeat"].as_str() > again["results"][0]["last_heartbeat"].as_str());
}

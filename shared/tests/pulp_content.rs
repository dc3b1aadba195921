//! Router tests for the management API's content lifecycle, in process, on the in-memory
//! store: orphan cleanup, sealed remote credentials, copies between repositories, and racing
//! creates and pushes. Content as the lists show it: `pulp_content_lists.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use berth::app::LocalApp;
use berth::domain::{media, Digest};
use common::pulp::{DISTS, PUSH, REMOTES, REPOS, T};
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// `POST /orphans/cleanup/` removes, as a task, the content no live repository references
/// (records and bytes), keeps what any version or pending upload of a live repository uses,
/// and keeps everything newer than the protection time.
#[tokio::test]
async fn orphan_cleanup_removes_what_no_repository_references() {
    let t = T::new().await;
    let (la, lx, lb) = (b"layer A".to_vec(), b"layer X".to_vec(), b"layer B".to_vec());
    t.push_image("a", "v1", &la).await;
    let mx = t.push_image("a", "v2", &lx).await;
    let mb = t.push_image("b", "v1", &lb).await;
    let ma = t.push_image("b", "v2", &la).await; // the same image as a:v1
    let upload = |name: &'static str, bytes: &'static [u8]| {
        let d = Digest::sha256_of(bytes);
        let t = &t;
        async move {
            let uri = format!("/v2/{name}/blobs/uploads/?digest={d}");
            let r = t.registry(Method::POST, &uri, None, bytes.to_vec()).await;
            assert_eq!(r.status, StatusCode::CREATED);
            d
        }
    };
    let pending_b = upload("b", b"uploaded to b, in no version yet").await;
    let pending_a = upload("a", b"uploaded to a, in no version").await;
    let stat = |d: Digest| {
        let blobs = t.app.blobs.clone();
        async move { blobs.stat(&d).await.unwrap().is_some() }
    };
    let lx_d = Digest::sha256_of(&lx);
    let repo_a = t.get(&format!("{PUSH}?name=a")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = t.task(t.delete(&repo_a).await).await;

    let cleanup = |body: Value| async {
        let r = t.post("/pulp/api/v3/orphans/cleanup/", body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
        let href = r.json()["task"].as_str().unwrap().to_owned();
        assert_eq!(t.get(&href).await.json()["state"], "waiting");
        let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
        let task = t.get(&href).await.json();
        assert_eq!(task["state"], "completed", "{task}");
        assert_eq!(task["name"], "pulpcore.app.tasks.orphan.orphan_cleanup");
        task
    };
    // within the default protection time (a day) nothing goes
    let task = cleanup(json!({})).await;
    assert_eq!(task["progress_reports"][0]["done"], 0, "{task}");
    assert!(stat(lx_d.clone()).await);

    // bad input, and nothing started
    let r = t
        .post("/pulp/api/v3/orphans/cleanup/", json!({"orphan_protection_time": -1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["orphan_protection_time"].is_array(), "{}", r.json());
    let r = t
        .post(
            "/pulp/api/v3/orphans/cleanup/",
            json!({"content_hrefs": ["/pulp/api/v3/content/container/blobs/00000000-0000-0000-0000-000000000000/"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["content_hrefs"].is_array(), "{}", r.json());

    // only the listed units
    let blob_href = t
        .get(&format!("/pulp/api/v3/content/container/blobs/?digest={lx_d}"))
        .await
        .json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = cleanup(json!({"orphan_protection_time": 0, "content_hrefs": [blob_href]})).await;
    assert_eq!(task["progress_reports"][0]["done"], 1, "{task}");
    assert!(!stat(lx_d.clone()).await, "the listed orphan is gone");
    assert!(t.app.store.manifest(&mx).await.unwrap().is_some(), "the rest stays");

    // everything orphaned, protection time 0
    let task = cleanup(json!({"orphan_protection_time": 0})).await;
    assert!(task["progress_reports"][0]["done"].as_u64().unwrap() >= 4, "{task}");
    assert!(t.app.store.manifest(&mx).await.unwrap().is_none(), "a:v2 is gone");
    assert!(!stat(mx.clone()).await);
    assert!(
        !stat(pending_a).await,
        "a blob uploaded to the deleted repository is gone"
    );
    // what b uses stays and is served
    for d in [
        Digest::sha256_of(&la),
        Digest::sha256_of(&lb),
        pending_b,
        ma.clone(),
        mb,
    ] {
        assert!(stat(d.clone()).await, "{d} stays");
    }
    let r = t.registry(Method::GET, "/v2/b/manifests/v2", None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    let uri = format!("/v2/b/blobs/{}", Digest::sha256_of(&la));
    let r = t.registry(Method::GET, &uri, None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    // the content list no longer shows what went
    let r = t
        .get(&format!("/pulp/api/v3/content/container/blobs/?digest={lx_d}"))
        .await;
    assert_eq!(r.json()["count"], 0, "{}", r.json());
    // a second run finds nothing more
    let task = cleanup(json!({"orphan_protection_time": 0})).await;
    assert_eq!(task["progress_reports"][0]["done"], 0, "{task}");

    // deleting b's distribution takes its push repository along (as in Pulp); then all goes
    let dist = t.get(&format!("{DISTS}?name=b")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = t.task(t.delete(&dist).await).await;
    assert_eq!(t.get(&format!("{PUSH}?name=b")).await.json()["count"], 0);
    let _ = cleanup(json!({"orphan_protection_time": 0})).await;
    assert_eq!(t.get("/pulp/api/v3/content/container/blobs/").await.json()["count"], 0);
    for d in [Digest::sha256_of(&la), Digest::sha256_of(&lb), ma] {
        assert!(!stat(d.clone()).await, "{d} is gone");
    }
}

/// Content only deleted versions held is an orphan; content an older, kept version holds is not.
#[tokio::test]
async fn orphan_cleanup_frees_what_only_deleted_versions_held() {
    let t = T::new().await;
    let lc = b"layer C".to_vec();
    let mc = t.push_image("c", "v1", &lc).await; // version 1
    t.push_image("c", "v2", b"layer D").await; // version 2
    let r = t
        .registry(Method::DELETE, &format!("/v2/c/manifests/{mc}"), None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED); // version 3, without c:v1
    let cleanup = || async {
        let r = t
            .post("/pulp/api/v3/orphans/cleanup/", json!({"orphan_protection_time": 0}))
            .await;
        let href = r.json()["task"].as_str().unwrap().to_owned();
        let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
        t.get(&href).await.json()
    };
    let lc_d = Digest::sha256_of(&lc);
    let _ = cleanup().await;
    assert!(
        t.app.blobs.stat(&lc_d).await.unwrap().is_some(),
        "versions 1 and 2 hold it"
    );
    let repo = t.get(&format!("{PUSH}?name=c")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in [1, 2] {
        let _ = t.task(t.delete(&format!("{repo}versions/{n}/")).await).await;
    }
    let task = cleanup().await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(
        t.app.blobs.stat(&lc_d).await.unwrap().is_none(),
        "only deleted versions held it"
    );
    assert!(t.app.store.manifest(&mc).await.unwrap().is_none());
    assert!(
        t.app
            .blobs
            .stat(&Digest::sha256_of(b"layer D"))
            .await
            .unwrap()
            .is_some(),
        "version 3 holds c:v2"
    );
}

/// Remote credentials are sealed at rest: the embedded database file never holds the
/// password, the API never shows it, and syncs get it back (the store opens it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_credentials_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let settings = berth::app::Settings {
        field_key: Some(std::sync::Arc::new(berth::store::FieldKey::from_bytes(&[7u8; 32]))),
        ..Default::default()
    };
    let local = LocalApp::embedded(dir.path(), settings).await.unwrap();
    let t = T::of(local).await;
    let secret = "pa55-in-the-clear-nowhere";
    let r = t
        .post(
            REMOTES,
            json!({"name": "up", "url": "https://up.example", "upstream_name": "x",
                   "username": "me", "password": secret, "proxy_password": "proxy-pa55-nowhere"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert!(!r.json().to_string().contains(secret));
    let href = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let r = t
        .patch(&href, json!({"description": "x", "url": "https://up2.example"}))
        .await;
    assert!(r.status.is_success(), "{}", r.json());
    let remote = t.app.store.remotes().await.unwrap().remove(0);
    assert_eq!(remote.password.as_deref(), Some(secret), "the store opens it for syncs");
    assert_eq!(remote.upstream_config().password.as_deref(), Some(secret));
    let db = std::fs::read(dir.path().join("berth.redb")).unwrap();
    let holds = |needle: &str| db.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(holds("https://up2.example"), "the remote is in the file");
    assert!(
        !holds(secret) && !holds("proxy-pa55-nowhere"),
        "its passwords are not, in the clear"
    );
    assert!(holds("enc:v1:"));
}

/// `copy_tags` and `copy_manifests` promote content from another repository's version into a
/// mirror repository as one new version, with everything the copied units reference.
#[tokio::test]
async fn copy_tags_and_manifests_between_repositories() {
    let t = T::new().await;
    let m1 = t.push_image("team/src", "v1", b"layer one").await;
    let m2 = t.push_image("team/src", "v2", b"layer two").await;
    let src = t.get(&format!("{PUSH}?name=team/src")).await.json()["results"][0].clone();
    let src_v2 = format!("{}versions/2/", src["pulp_href"].as_str().unwrap());
    let dst = t.post(REPOS, json!({"name": "promoted"})).await.json();
    let dst_href = dst["pulp_href"].as_str().unwrap().to_owned();
    let copy_tags = format!("{dst_href}copy_tags/");
    let copy_manifests = format!("{dst_href}copy_manifests/");

    // bad input: no source, both sources, a source that does not exist
    let r = t.post(&copy_tags, json!({"names": ["v1"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["non_field_errors"].is_array(), "{}", r.json());
    let r = t
        .post(
            &copy_tags,
            json!({"source_repository": dst_href, "source_repository_version": src_v2}),
        )
        .await;
    assert!(r.json()["non_field_errors"].is_array(), "{}", r.json());
    let r = t
        .post(
            &copy_tags,
            json!({"source_repository_version": format!("{}versions/9/", src["pulp_href"].as_str().unwrap())}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["source_repository_version"].is_array(), "{}", r.json());

    // the CLI's body: a version href and the names (null for every tag)
    let task = t
        .task(
            t.post(
                &copy_tags,
                json!({"source_repository_version": src_v2, "names": ["v1"]}),
            )
            .await,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(task["created_resources"][0].as_str().unwrap().ends_with("/versions/1/"));
    let v1 = t.get(&format!("{dst_href}versions/1/")).await.json();
    let present = &v1["content_summary"]["present"];
    assert_eq!(present["container.tag"]["count"], 1, "{v1}");
    assert_eq!(present["container.manifest"]["count"], 1);
    assert_eq!(
        present["container.blob"]["count"], 2,
        "the config and the layer come along"
    );
    let promoted = t.app.store.repository_by_name("promoted").await.unwrap().unwrap();
    assert!(t
        .app
        .store
        .contains(promoted.id, 1, &berth::domain::ContentKey::Manifest(m1.clone()))
        .await
        .unwrap());
    // every OCI manifest of the latest source version, by media type; nothing new is no version
    let task = t
        .task(
            t.post(
                &copy_manifests,
                json!({"source_repository_version": src_v2, "digests": null,
                       "media_types": [media::OCI_MANIFEST]}),
            )
            .await,
        )
        .await;
    assert!(
        task["created_resources"][0].as_str().unwrap().ends_with("/versions/2/"),
        "{task}"
    );
    assert!(t
        .app
        .store
        .contains(promoted.id, 2, &berth::domain::ContentKey::Manifest(m2))
        .await
        .unwrap());
    let task = t
        .task(
            t.post(
                &copy_manifests,
                json!({"source_repository_version": src_v2, "digests": [m1]}),
            )
            .await,
        )
        .await;
    assert_eq!(task["created_resources"], json!([]), "no change, no version");
}

/// Racing first pushes into one new name make one push repository, the one its distribution
/// serves; an orphan cleanup with no protection time afterwards keeps every image, and racing
/// creates of one name through the API give exactly one 201 (DESIGN invariant 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_make_one_of_each_and_cleanup_keeps_every_image() {
    let t = std::sync::Arc::new(T::new().await);
    let racers = 16;
    // Given 16 clients, When each pushes an image of its own into one new name at once
    let mut tasks = Vec::new();
    for i in 0..racers {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let layer = format!("racing layer {i}").into_bytes();
            t.push_image("race/new", &format!("t{i}"), &layer).await
        }));
    }
    let mut pushed = Vec::new();
    for task in tasks {
        pushed.push(task.await.unwrap());
    }
    // Then one repository holds the name, and the distribution serves that one
    let listed = t.get(&format!("{PUSH}?name=race/new")).await.json();
    assert_eq!(listed["count"], 1, "{listed}");
    let dist = t.get(&format!("{DISTS}?base_path=race/new")).await.json();
    assert_eq!(dist["count"], 1, "{dist}");
    assert_eq!(dist["results"][0]["repository"], listed["results"][0]["pulp_href"]);
    let all = t.get(&format!("{PUSH}?limit=1000")).await.json();
    assert_eq!(all["count"], 1, "{all}");
    // When orphans are cleaned up with no protection time
    let r = t
        .post("/pulp/api/v3/orphans/cleanup/", json!({"orphan_protection_time": 0}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let href = r.json()["task"].as_str().unwrap().to_owned();
    let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
    assert_eq!(t.get(&href).await.json()["state"], "completed");
    // Then every tag still pulls, with its blobs
    for (i, digest) in pushed.iter().enumerate() {
        let r = t
            .registry(Method::GET, &format!("/v2/race/new/manifests/t{i}"), None, Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::OK, "t{i}");
        let bytes = r.body;
        assert_eq!(&Digest::sha256_of(&bytes), digest);
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        for blob in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
            let uri = format!("/v2/race/new/blobs/{}", blob.as_str().unwrap());
            let r = t.registry(Method::GET, &uri, None, Vec::new()).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}");
        }
    }

    // Given 8 clients, When each creates a repository, a remote and a distribution of one
    // name at once, Then exactly one of each is created and listed
    for (list, body) in [
        (REPOS, json!({"name": "x"})),
        (
            REMOTES,
            json!({"name": "x", "url": "http://127.0.0.1:1", "upstream_name": "x"}),
        ),
    ] {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (t, body) = (t.clone(), body.clone());
            tasks.push(tokio::spawn(async move { t.post(list, body).await }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            let r = task.await.unwrap();
            if r.status == StatusCode::BAD_REQUEST {
                assert_eq!(r.json()["name"][0], "This field must be unique.", "{}", r.json());
            }
            statuses.push(r.status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count(), 7);
        assert_eq!(t.get(&format!("{list}?name=x")).await.json()["count"], 1);
    }
    // distributions are created by a task; a name already taken when asked is refused at once
    let mut tasks = Vec::new();
    for i in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let r = t.post(DISTS, json!({"name": "x", "base_path": format!("x{i}")})).await;
            let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
            r
        }));
    }
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    while t.local.jobs.run_one(&*t.app.worker()).await.unwrap().is_some() {}
    let mut completed = 0;
    for r in responses {
        match r.status {
            StatusCode::ACCEPTED => {
                let task = t.get(r.json()["task"].as_str().unwrap()).await.json();
                match task["state"].as_str().unwrap() {
                    "completed" => completed += 1,
                    "failed" => {}
                    other => panic!("task {other}: {task}"),
                }
            }
            StatusCode::BAD_REQUEST => assert_eq!(r.json()["name"][0], "This field must be unique.", "{}", r.json()),
            other => panic!("{other}: {}", r.json()),
        }
    }
    assert_eq!(completed, 1);
    assert_eq!(t.get(&format!("{DISTS}?name=x")).await.json()["count"], 1);
}

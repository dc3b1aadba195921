//! Repair of a repository version (`POST <version>/repair/`), end to end through the
//! management API: a real `docker-registry` upstream, a sync, then stored bytes truncated or
//! deleted behind Berth's back; the repair's task reports what pulpcore's does and the bytes
//! are served again exactly. Runs on the embedded store (files, redb, the in-process job
//! queue) and, with the `moto` feature, on S3, DynamoDB and SQS.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use berth::adapters::local_jobs::LocalJobQueue;
use berth::app::{App, LocalApp};
use berth::domain::Digest;
use berth::ports::{JobError, JobHandler, RepairJob};
use berth::services::Repair;
use common::pulp::{Api, DISTS, REMOTES, REPOS};
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// How a test reaches the runtime under the API: its jobs, and its stored bytes.
enum Backend {
    Embedded {
        jobs: LocalJobQueue,
        dir: PathBuf,
        _keep: tempfile::TempDir,
    },
    #[cfg(feature = "moto")]
    Aws {
        poller: berth::adapters::sqs_queue::SqsPoller,
        s3: aws_sdk_s3::Client,
        bucket: String,
    },
}

impl Backend {
    /// Runs every queued job.
    async fn run_jobs(&self, app: &App) {
        let worker: Arc<dyn JobHandler> = app.worker();
        match self {
            Backend::Embedded { jobs, .. } => while jobs.run_one(&*worker).await.unwrap().is_some() {},
            #[cfg(feature = "moto")]
            Backend::Aws { poller, .. } => while !poller.poll_once(&*worker).await.unwrap().is_empty() {},
        }
    }

    /// Replaces the stored bytes of `d` with their first half, behind the blob store's back.
    async fn truncate(&self, d: &Digest, bytes: &[u8]) {
        let half = bytes[..bytes.len() / 2].to_vec();
        match self {
            Backend::Embedded { dir, .. } => {
                let hex = d.hex();
                let path = dir.join("blobs").join("sha256").join(&hex[..2]).join(hex);
                assert!(path.is_file(), "{path:?}");
                std::fs::write(path, half).unwrap();
            }
            #[cfg(feature = "moto")]
            Backend::Aws { s3, bucket, .. } => {
                s3.put_object()
                    .bucket(bucket)
                    .key(format!("blobs/sha256/{}", d.hex()))
                    .body(half.into())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

async fn embedded() -> (Api, Backend) {
    let keep = tempfile::tempdir().unwrap();
    let local = LocalApp::embedded(keep.path(), Default::default()).await.unwrap();
    let api = Api::over(local.app.clone()).await;
    let backend = Backend::Embedded {
        jobs: local.jobs.clone(),
        dir: keep.path().to_owned(),
        _keep: keep,
    };
    (api, backend)
}

#[cfg(feature = "moto")]
async fn aws() -> (Api, Backend) {
    let endpoint = common::moto::endpoint();
    let sdk = berth::adapters::aws::sdk_config_for(&endpoint, "us-east-1", "testing", "testing").await;
    let settings = common::moto::settings(true);
    let bucket = settings.bucket.clone();
    let aws = berth::app::AwsApp::connect(&sdk, &settings, Default::default())
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let api = Api::over(aws.app).await;
    let poller = aws.poller.wait_time(std::time::Duration::from_secs(1));
    (api, Backend::Aws { poller, s3, bucket })
}

/// Runs the queued jobs and reads the task a 202 answered with.
async fn run(api: &Api, b: &Backend, r: common::http::Resp) -> Value {
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let href = r.json()["task"].as_str().unwrap().to_owned();
    b.run_jobs(&api.app).await;
    api.get(&href).await.json()
}

/// `done` of the report with `code` (`None`: there is none).
fn done(task: &Value, code: &str) -> Option<u64> {
    task["progress_reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .map(|r| r["done"].as_u64().unwrap())
}

/// The repair's reports: missing, corrupted, repaired, as pulpcore's.
fn counts(task: &Value) -> (u64, u64, u64) {
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["name"], "pulpcore.app.tasks.repository.repair_version");
    let reports = task["progress_reports"].as_array().unwrap();
    for (i, (message, code)) in [
        ("Identify missing units", "repair.missing"),
        ("Identify corrupted units", "repair.corrupted"),
        ("Repair corrupted units", "repair.repaired"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(reports[i]["message"], message, "{task}");
        assert_eq!(reports[i]["code"], code, "{task}");
        assert_eq!(reports[i]["state"], "completed", "{task}");
        assert_eq!(reports[i]["total"], Value::Null, "{task}");
    }
    (
        done(task, "repair.missing").unwrap(),
        done(task, "repair.corrupted").unwrap(),
        done(task, "repair.repaired").unwrap(),
    )
}

/// The blob as a client pulls it from `base_path` (following the redirect to S3).
async fn pull(api: &Api, base_path: &str, d: &Digest) -> (StatusCode, Vec<u8>) {
    let r = api
        .registry(Method::GET, &format!("/v2/{base_path}/blobs/{d}"), None, vec![])
        .await;
    if r.status != StatusCode::TEMPORARY_REDIRECT {
        return (r.status, r.body.to_vec());
    }
    let url = r.header("location").to_owned();
    let got = reqwest::get(url).await.unwrap();
    (got.status(), got.bytes().await.unwrap().to_vec())
}

async fn repairs_what_was_lost(api: Api, b: Backend) {
    let reg = common::DockerRegistry::start().await;
    let fx = common::fill(&reg, "repair/fixture").await;
    let bytes_of = |d: &Digest| fx.blobs.iter().find(|(x, _)| x == d).unwrap().1.clone();
    let layer = fx.docker_layers[0].clone();
    let layer_bytes = bytes_of(&layer);

    // Given: a mirror of the `docker` image, synced with the immediate policy and served
    let r = api
        .post(
            REMOTES,
            json!({"name": "up", "url": reg.base(), "upstream_name": "repair/fixture",
                   "include_tags": ["docker"], "policy": "immediate", "max_retries": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let remote = r.json()["pulp_href"].as_str().unwrap().to_owned();
    // (no default remote: the repair finds the remote that synced the repository)
    let r = api.post(REPOS, json!({"name": "mirror"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let repo = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let r = api
        .post(
            DISTS,
            json!({"name": "mirror", "base_path": "mirror", "repository": repo}),
        )
        .await;
    assert_eq!(run(&api, &b, r).await["state"], "completed");
    let t = run(
        &api,
        &b,
        api.post(&format!("{repo}sync/"), json!({"remote": remote})).await,
    )
    .await;
    assert_eq!(t["state"], "completed", "{t}");
    let version = format!("{repo}versions/1/");
    let manifest = api.app.store.manifest(&fx.docker).await.unwrap().unwrap();
    let config = manifest.parsed.config.clone().unwrap().digest;
    assert_eq!(
        pull(&api, "mirror", &layer).await,
        (StatusCode::OK, layer_bytes.clone())
    );

    // a version that does not exist has nothing to repair
    let r = api.post(&format!("{repo}versions/9/repair/"), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .post(&format!("{version}repair/"), json!({"verify_checksums": "maybe"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // a whole version reads fine
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (0, 0, 0));
    let id = repo.trim_end_matches('/').rsplit('/').next().unwrap();
    assert_eq!(
        t["reserved_resources_record"],
        json!([format!("shared:prn:container.containerrepository:{id}")]),
        "{t}"
    );

    // When: the layer is truncated, the config and the manifest's stored bytes deleted
    b.truncate(&layer, &layer_bytes).await;
    api.app.blobs.delete(&config).await.unwrap();
    api.app.blobs.delete(&fx.docker).await.unwrap();
    let (status, body) = pull(&api, "mirror", &layer).await;
    assert!(status != StatusCode::OK || body != layer_bytes, "the layer is broken");

    // Then: a repair without checksums finds (and fetches again) only what is missing
    let t = run(
        &api,
        &b,
        api.post(&format!("{version}repair/"), json!({"verify_checksums": false}))
            .await,
    )
    .await;
    assert_eq!(counts(&t), (2, 0, 2));
    assert_eq!(
        api.app.blobs.stat(&config).await.unwrap(),
        Some(bytes_of(&config).len() as u64)
    );
    let stored = berth::ports::collect(api.app.blobs.open(&fx.docker, None).await.unwrap().body)
        .await
        .unwrap();
    assert_eq!(stored, fx.manifest("docker"));

    // and one that hashes finds the truncated layer and fetches it again
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (0, 1, 1));
    assert_eq!(
        pull(&api, "mirror", &layer).await,
        (StatusCode::OK, layer_bytes.clone())
    );
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (0, 0, 0));

    // a run that reaches its deadline keeps where it got to; the follow-up goes on from there
    b.truncate(&layer, &layer_bytes).await;
    let id: uuid::Uuid = repo.trim_end_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let r = api.app.store.repository(id).await.unwrap().unwrap();
    let task = api.app.manage.repair_version(&r, 1, true).await.unwrap();
    let job = RepairJob {
        task: task.id,
        repository: id,
        version: 1,
        verify_checksums: true,
    };
    let repair = Repair::new(api.app.store.clone(), api.app.blobs.clone(), api.app.upstreams.clone());
    assert!(matches!(repair.run(&job, Some(0)).await, Err(JobError::Continue)));
    assert!(api.app.store.checkpoint(task.id).await.unwrap().is_some());
    let t = api.get(&format!("/pulp/api/v3/tasks/{}/", task.id)).await.json();
    assert_eq!(t["state"], "running", "{t}");
    repair.run(&job, None).await.unwrap();
    assert!(api.app.store.checkpoint(task.id).await.unwrap().is_none());
    let t = api.get(&format!("/pulp/api/v3/tasks/{}/", task.id)).await.json();
    assert_eq!(counts(&t), (0, 1, 1));
    assert_eq!(
        pull(&api, "mirror", &layer).await,
        (StatusCode::OK, layer_bytes.clone())
    );
    b.run_jobs(&api.app).await; // the queued copy of the job finds its task finished

    // When the upstream cannot be reached, a lost layer is unrepairable and reported …
    let r = api
        .patch(&remote, json!({"url": "http://127.0.0.1:1", "max_retries": 0}))
        .await;
    assert_eq!(run(&api, &b, r).await["state"], "completed");
    api.app.blobs.delete(&layer).await.unwrap();
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (1, 0, 0));
    assert_eq!(done(&t, "repair.unrepairable"), Some(1), "{t}");
    assert_eq!(pull(&api, "mirror", &layer).await.0, StatusCode::NOT_FOUND);

    // … unless its remote is on_demand: then it becomes remote again, fetched when pulled
    let r = api.patch(&remote, json!({"policy": "on_demand"})).await;
    assert_eq!(run(&api, &b, r).await["state"], "completed");
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (1, 0, 0));
    assert_eq!(done(&t, "repair.on_demand"), Some(1), "{t}");
    assert_eq!(done(&t, "repair.unrepairable"), None, "{t}");
    let r = api.patch(&remote, json!({"url": reg.base()})).await;
    assert_eq!(run(&api, &b, r).await["state"], "completed");
    assert_eq!(
        pull(&api, "mirror", &layer).await,
        (StatusCode::OK, layer_bytes.clone())
    );
    // the pull stored it again
    assert_eq!(
        api.app.blobs.stat(&layer).await.unwrap(),
        Some(layer_bytes.len() as u64)
    );
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (0, 0, 0));
}

#[tokio::test]
async fn a_repair_fetches_lost_and_corrupt_content_again_on_the_embedded_store() {
    let (api, b) = embedded().await;
    repairs_what_was_lost(api, b).await;
}

#[cfg(feature = "moto")]
#[tokio::test]
async fn a_repair_fetches_lost_and_corrupt_content_again_on_aws() {
    let (api, b) = aws().await;
    repairs_what_was_lost(api, b).await;
}

/// A push repository has no remote: a lost layer is unrepairable, a lost manifest comes back
/// from the copy its record keeps.
#[tokio::test]
async fn a_push_repository_repairs_manifests_from_their_records() {
    let (api, b) = embedded().await;
    let manifest = api.push_image("pushed", "v1", b"a layer of a pushed image").await;
    let layer = Digest::sha256_of(b"a layer of a pushed image");
    let r = api.get(&format!("{}?name=pushed", common::pulp::PUSH)).await.json();
    let repo = r["results"][0]["pulp_href"].as_str().unwrap().to_owned();
    let version = format!("{repo}versions/1/");
    api.app.blobs.delete(&layer).await.unwrap();
    api.app.blobs.delete(&manifest).await.unwrap();
    let t = run(&api, &b, api.post(&format!("{version}repair/"), json!({})).await).await;
    assert_eq!(counts(&t), (2, 0, 1));
    assert_eq!(done(&t, "repair.unrepairable"), Some(1), "{t}");
    assert!(api.app.blobs.stat(&manifest).await.unwrap().is_some());
}

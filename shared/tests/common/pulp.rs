//! The management API (`/pulp/api/v3/`) in process, with an admin and a read-only user:
//! requests as either, task waits, and plain registry pushes. [`T`] runs its jobs, on the
//! in-memory store or, with [`T::on`], the embedded store or DynamoDB and S3 on moto; [`Api`]
//! runs on any app's store, for what needs no jobs.

use std::ops::Deref;

use axum::Router;
use berth::app::{App, LocalApp};
use berth::domain::{media, Digest};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::http::{Req, Resp};

/// The API on the in-memory store, with its job queue.
pub struct T {
    api: Api,
    pub local: LocalApp,
}

impl Deref for T {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

pub const PW: &str = "test-password";

impl T {
    pub async fn new() -> T {
        T::of(LocalApp::in_memory()).await
    }

    /// The API of `local`, which runs its jobs.
    pub async fn of(local: LocalApp) -> T {
        T {
            api: Api::over(local.app.clone()).await,
            local,
        }
    }

    /// On `backend`, with the in-process job queue in the same store.
    pub async fn on(backend: Backend) -> On {
        Self::on_with(backend, berth::app::Settings::default()).await
    }

    /// On `backend` with `settings`, with the in-process job queue in the same store.
    pub async fn on_with(backend: Backend, settings: berth::app::Settings) -> On {
        let (local, dir) = match backend {
            Backend::Memory => (LocalApp::in_memory_with(settings), None),
            Backend::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                (LocalApp::embedded(dir.path(), settings).await.unwrap(), Some(dir))
            }
            #[cfg(feature = "moto")]
            Backend::Aws => {
                let sdk =
                    berth::adapters::aws::sdk_config_for(&super::moto::endpoint(), "us-east-1", "testing", "testing")
                        .await;
                let table = berth::adapters::dynamo_table::DynamoTable::new(&sdk, super::moto::unique("table"));
                table.create_if_missing().await.unwrap();
                let blobs = berth::adapters::s3_blobs::S3BlobStore::new(&sdk, super::moto::unique("bucket"), true);
                blobs.create_bucket_if_missing().await.unwrap();
                (
                    LocalApp::over(std::sync::Arc::new(table), std::sync::Arc::new(blobs), settings),
                    None,
                )
            }
        };
        On {
            t: T::of(local).await,
            _dir: dir,
        }
    }
}

/// Where a test's Berth keeps its data.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    /// redb and files in a temporary directory.
    Embedded,
    /// DynamoDB and S3 on the moto server at `BERTH_TEST_MOTO`, in a table and bucket of the
    /// test's own (jobs in the in-process queue, in the same table).
    #[cfg(feature = "moto")]
    Aws,
}

/// A [`T`] on the store [`T::on`] was given, keeping alive what that store needs (the
/// embedded store's directory, removed when the test ends).
pub struct On {
    t: T,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for On {
    type Target = T;
    fn deref(&self) -> &T {
        &self.t
    }
}

/// The API of an app on any store.
pub struct Api {
    pub app: App,
    pub router: Router,
    /// The embedded store's folder, removed when the API is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Api {
    /// The API of `app`, with the admin and the read-only user set up.
    pub async fn over(app: App) -> Api {
        let reader = berth::config::ReadonlyUser {
            name: "reader".into(),
            password: berth::config::Secret::new("reader-pw"),
        };
        app.ensure_accounts(Some(PW), &[reader]).await.unwrap();
        Api {
            router: app.router(),
            app,
            _dir: None,
        }
    }

    /// On the embedded store, in a fresh folder.
    pub async fn embedded() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalApp::embedded(dir.path(), Default::default()).await.unwrap();
        let mut api = Api::over(local.app).await;
        api._dir = Some(dir);
        api
    }

    /// On S3, DynamoDB and SQS of the moto server at `BERTH_TEST_MOTO`, in fresh resources.
    #[cfg(feature = "moto")]
    pub async fn aws() -> Api {
        let sdk =
            berth::adapters::aws::sdk_config_for(&super::moto::endpoint(), "us-east-1", "testing", "testing").await;
        let aws = berth::app::AwsApp::connect(&sdk, &super::moto::settings(true), Default::default())
            .await
            .unwrap();
        Api::over(aws.app).await
    }

    pub async fn call(&self, method: Method, uri: &str, auth: Option<(&str, &str)>, body: Option<Value>) -> Resp {
        let mut r = Req::new(method, uri).header("host", "reg.example:5000");
        if let Some((u, p)) = auth {
            r = r.basic(u, p);
        }
        if let Some(v) = body {
            r = r.json(&v);
        }
        let r = r.send(&self.router).await;
        if !r.body.is_empty() {
            assert_eq!(
                r.headers.get("content-type").map(|v| v.to_str().unwrap()),
                Some("application/json"),
                "exactly application/json"
            );
        }
        r
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, Some(("admin", PW)), None).await
    }
    pub async fn post(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::POST, uri, Some(("admin", PW)), Some(body)).await
    }
    pub async fn patch(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::PATCH, uri, Some(("admin", PW)), Some(body)).await
    }
    pub async fn delete(&self, uri: &str) -> Resp {
        self.call(Method::DELETE, uri, Some(("admin", PW)), None).await
    }

    /// Follows a 202 to its task, which must be completed; returns the task.
    pub async fn task(&self, r: Resp) -> Value {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
        let json = r.json();
        let obj = json.as_object().unwrap();
        assert_eq!(obj.len(), 1, "exactly one key");
        let t = self.get(r.json()["task"].as_str().unwrap()).await;
        assert_eq!(t.status, StatusCode::OK);
        t.json()
    }

    /// A request to the registry (`/v2`), without credentials (the in-memory app is open).
    pub async fn registry(&self, m: Method, uri: &str, ct: Option<&str>, body: Vec<u8>) -> Resp {
        let mut r = Req::new(m, uri).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send(&self.router).await
    }

    pub async fn push_image(&self, name: &str, tag: &str, layer: &[u8]) -> Digest {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","layer":"{}"}}"#,
            Digest::sha256_of(layer)
        )
        .into_bytes();
        for b in [&config[..], layer] {
            let d = Digest::sha256_of(b);
            let r = self
                .registry(
                    Method::POST,
                    &format!("/v2/{name}/blobs/uploads/?digest={d}"),
                    None,
                    b.to_vec(),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": Digest::sha256_of(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256_of(layer), "size": layer.len()}],
        }))
        .unwrap();
        let r = self
            .registry(
                Method::PUT,
                &format!("/v2/{name}/manifests/{tag}"),
                Some(media::OCI_MANIFEST),
                m.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        Digest::sha256_of(&m)
    }
}

pub const REPOS: &str = "/pulp/api/v3/repositories/container/container/";
pub const PUSH: &str = "/pulp/api/v3/repositories/container/container-push/";
pub const REMOTES: &str = "/pulp/api/v3/remotes/container/container/";
pub const DISTS: &str = "/pulp/api/v3/distributions/container/container/";

/// One `#[tokio::test]` per case and store: `case(t: On)` on the in-memory store, the embedded
/// store and (with the `moto` feature) DynamoDB and S3 on moto, in modules named after them.
#[allow(unused_macros)]
macro_rules! on_every_store {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::common::pulp::T::on($crate::common::pulp::Backend::Memory).await).await
                }
            )+
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::common::pulp::T::on($crate::common::pulp::Backend::Embedded).await).await
                }
            )+
        }
        #[cfg(feature = "moto")]
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case($crate::common::pulp::T::on($crate::common::pulp::Backend::Aws).await).await
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_store;

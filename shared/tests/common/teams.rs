//! Teams and access through one app in process: users' requests to the management API and
//! the registry (tokens or Basic), on the in-memory store, the embedded store or the AWS
//! adapters on moto.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth::app::{LocalApp, Settings};
use berth::domain::{media, Digest};
use berth::services::tokens::{TokenKey, Tokens};
use berth::services::AuthMode;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::http::{basic, bearer, Req, Resp};

pub const HOST: &str = "reg.test:5000";
pub const PW: &str = "admin-pw";
pub const USERS: &str = "/pulp/api/v3/users/";
pub const GROUPS: &str = "/pulp/api/v3/groups/";
pub const NS: &str = "/pulp/api/v3/pulp_container/namespaces/";
pub const DISTS: &str = "/pulp/api/v3/distributions/container/container/";
pub const REPOS: &str = "/pulp/api/v3/repositories/container/container/";

pub struct T {
    pub router: Router,
    pub token_auth: bool,
    pub _local: LocalApp,
    pub _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy)]
pub enum Store {
    Memory,
    Embedded,
    #[cfg(feature = "moto")]
    Aws,
}

impl T {
    pub async fn new(token_auth: bool, store: Store) -> T {
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
                    berth::adapters::aws::sdk_config_for(&super::moto::endpoint(), "us-east-1", "testing", "testing")
                        .await;
                let table = berth::adapters::dynamo_table::DynamoTable::new(&sdk, super::moto::unique("table"));
                table.create_if_missing().await.unwrap();
                let blobs = berth::adapters::s3_blobs::S3BlobStore::new(&sdk, super::moto::unique("bucket"), true);
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

    pub async fn api(&self, method: Method, uri: &str, who: (&str, &str), body: Option<Value>) -> Resp {
        let mut r = Req::new(method, uri).header("host", HOST).basic(who.0, who.1);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send(&self.router).await
    }

    pub async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> Value {
        let r = self.api(method, uri, ("admin", PW), body).await;
        assert!(r.status.is_success(), "{uri}: {} {}", r.status, r.text());
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// The Authorization header `who` sends for `scope` on the registry.
    pub async fn registry_auth(&self, who: Option<(&str, &str)>, scope: &str) -> Option<String> {
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

    pub async fn registry(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&str>,
        ct: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut r = Req::new(method, uri).header("host", HOST).auth(auth).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send(&self.router).await
    }

    /// Pushes a one-layer image as `who`: the status of the first refused request, or 201.
    pub async fn push(&self, who: Option<(&str, &str)>, name: &str, tag: &str) -> StatusCode {
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
    pub async fn pull(&self, who: Option<(&str, &str)>, name: &str, tag: &str) -> Resp {
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

    pub async fn catalog(&self, who: Option<(&str, &str)>) -> Vec<String> {
        let auth = self.registry_auth(who, "registry:catalog:*").await;
        let r = self
            .registry(Method::GET, "/v2/_catalog", auth.as_deref(), None, vec![])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        serde_json::from_value(r.json()["repositories"].clone()).unwrap()
    }

    pub async fn dist_href(&self, base_path: &str) -> String {
        let r = self
            .admin(Method::GET, &format!("{DISTS}?base_path={base_path}"), None)
            .await;
        r["results"][0]["pulp_href"].as_str().unwrap().to_owned()
    }

    pub async fn names(&self, who: (&str, &str), list: &str, key: &str) -> Vec<String> {
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

pub const ALICE: (&str, &str) = ("alice", "wonderland-1");
pub const BOB: (&str, &str) = ("bob", "builder-222");
pub const CAROL: (&str, &str) = ("carol", "sunrise-333");

pub fn denied(s: StatusCode) -> bool {
    s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN
}

//! The OCI `/v2` router in process, on the in-memory or the embedded store, with token auth
//! off: requests, blob and manifest pushes, and one test per case on each store.

use axum::body::Body;
use axum::Router;
use berth::app::{App, LocalApp};
use berth::domain::{media, Digest};
use http::{Method, StatusCode};
use serde_json::json;

use super::http::{Req, Resp};

pub struct T {
    pub app: App,
    pub router: Router,
    _dir: Option<tempfile::TempDir>,
}

impl T {
    /// The router of `app`, whose storage (if any) the caller keeps.
    pub fn of(app: App) -> Self {
        T {
            router: app.router(),
            app,
            _dir: None,
        }
    }

    pub fn memory() -> Self {
        T::of(LocalApp::in_memory().app)
    }

    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = LocalApp::embedded(dir.path(), Default::default()).await.unwrap().app;
        T {
            router: app.router(),
            app,
            _dir: Some(dir),
        }
    }

    pub async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Resp {
        let r = Req::new(method, uri)
            .headers(headers)
            .body(body)
            .send(&self.router)
            .await;
        assert_eq!(
            r.headers
                .get("docker-distribution-api-version")
                .map(|v| v.to_str().unwrap()),
            Some("registry/2.0"),
            "every response carries the API version"
        );
        r
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    /// Monolithic upload.
    pub async fn blob(&self, name: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/?digest={d}"),
                &[],
                bytes.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        d
    }

    pub async fn put_manifest(&self, name: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.send(
            Method::PUT,
            &format!("/v2/{name}/manifests/{reference}"),
            &[("content-type", media_type)],
            body.to_vec(),
        )
        .await
    }

    /// Pushes an image (config + layers) and returns its manifest bytes and digest.
    pub async fn image(&self, name: &str, tag: &str, layers: &[&[u8]]) -> (Vec<u8>, Digest) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":"{name}{tag}"}}"#);
        let cd = self.blob(name, config.as_bytes()).await;
        let mut ls = Vec::new();
        for l in layers {
            let d = self.blob(name, l).await;
            ls.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.len()}));
        }
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": cd, "size": config.len()},
            "layers": ls,
        }))
        .unwrap();
        let r = self.put_manifest(name, tag, media::OCI_MANIFEST, &m).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        let d = Digest::sha256_of(&m);
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        (m, d)
    }

    pub async fn latest_version(&self, name: &str) -> berth::store::RepositoryVersion {
        let repo = self.app.store.repository_by_name(name).await.unwrap().unwrap();
        self.app
            .store
            .version(&repo, repo.latest_version)
            .await
            .unwrap()
            .unwrap()
    }
}

/// One `#[tokio::test]` per case on the in-memory store (`memory::…`) and on the embedded
/// one (`embedded::…`); each case is an `async fn(T)` beside the call.
#[allow(unused_macros)]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $name() { super::$name(super::T::memory()).await } )*
        }
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::T::embedded().await).await } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both;

//! Router tests for `/v2`, in process (`oneshot`), on the in-memory and embedded adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use berth::app::{App, LocalApp};
use berth::domain::{media, ContentType, Digest};
use common::http::{Req, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};

struct T {
    app: App,
    router: Router,
    _dir: Option<tempfile::TempDir>,
}

impl T {
    fn memory() -> Self {
        let app = LocalApp::in_memory().app;
        T {
            router: app.router(),
            app,
            _dir: None,
        }
    }

    async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = LocalApp::embedded(dir.path(), Default::default()).await.unwrap().app;
        T {
            router: app.router(),
            app,
            _dir: Some(dir),
        }
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Resp {
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

    async fn get(&self, uri: &str) -> Resp {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    /// Monolithic upload.
    async fn blob(&self, name: &str, bytes: &[u8]) -> Digest {
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

    async fn put_manifest(&self, name: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.send(
            Method::PUT,
            &format!("/v2/{name}/manifests/{reference}"),
            &[("content-type", media_type)],
            body.to_vec(),
        )
        .await
    }

    /// Pushes an image (config + layers) and returns its manifest bytes and digest.
    async fn image(&self, name: &str, tag: &str, layers: &[&[u8]]) -> (Vec<u8>, Digest) {
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

    async fn latest_version(&self, name: &str) -> berth::store::RepositoryVersion {
        let repo = self.app.store.repository_by_name(name).await.unwrap().unwrap();
        self.app
            .store
            .version(&repo, repo.latest_version)
            .await
            .unwrap()
            .unwrap()
    }
}

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

both!(
    ping,
    push_and_pull_an_image,
    upload_flows,
    upload_errors,
    blob_ranges,
    manifest_errors,
    content_negotiation,
    index_needs_its_children,
    tags_and_catalog_paginate,
    referrers,
    cross_repository_mount,
    deletes_make_versions,
    versions_on_push,
    bad_names_and_routes,
);

async fn ping(t: T) {
    let r = t.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({}));
    assert_eq!(t.get("/v2").await.status, StatusCode::OK);
    let r = t.send(Method::HEAD, "/v2/", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn push_and_pull_an_image(t: T) {
    let (m, d) = t.image("library/hello", "1.0", &[b"layer one", b"layer two"]).await;
    for reference in ["1.0".to_string(), d.to_string()] {
        let r = t
            .send(
                Method::GET,
                &format!("/v2/library/hello/manifests/{reference}"),
                &[("accept", media::OCI_MANIFEST)],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, m);
        assert_eq!(r.header("content-type"), media::OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        let h = t
            .send(
                Method::HEAD,
                &format!("/v2/library/hello/manifests/{reference}"),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(h.status, StatusCode::OK);
        assert!(h.body.is_empty());
        assert_eq!(h.header("content-length"), m.len().to_string());
        assert_eq!(h.header("docker-content-digest"), d.as_str());
    }
    let ld = Digest::sha256_of(b"layer two");
    let r = t.get(&format!("/v2/library/hello/blobs/{ld}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"layer two");
    assert_eq!(r.header("docker-content-digest"), ld.as_str());
    let h = t
        .send(
            Method::HEAD,
            &format!("/v2/library/hello/blobs/{ld}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("content-length"), "9");
    // unknown things
    let r = t
        .get(&format!("/v2/library/hello/blobs/{}", Digest::sha256_of(b"nope")))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
    let r = t.get("/v2/library/hello/manifests/2.0").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    let r = t.get("/v2/library/nothing/manifests/1.0").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NAME_UNKNOWN"));
    // a blob of another repository is not visible here
    t.blob("other", b"secret layer").await;
    let r = t
        .get(&format!(
            "/v2/library/hello/blobs/{}",
            Digest::sha256_of(b"secret layer")
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn upload_flows(t: T) {
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256_of(&data);

    // POST + PUT with the whole body in the PUT
    let r = t.send(Method::POST, "/v2/up/blobs/uploads/", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_owned();
    assert!(loc.starts_with("/v2/up/blobs/uploads/"));
    assert_eq!(r.header("range"), "0-0");
    assert!(!r.header("docker-upload-uuid").is_empty());
    let r = t
        .send(Method::PUT, &format!("{loc}?digest={d}"), &[], data.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/up/blobs/{d}"));
    assert_eq!(t.get(&format!("/v2/up/blobs/{d}")).await.body, data);

    // chunked PATCH with Content-Range, status, out-of-order chunk, final empty PUT
    let data2: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
    let d2 = Digest::sha256_of(&data2);
    let loc = t
        .send(Method::POST, "/v2/up/blobs/uploads/", &[], Body::empty())
        .await
        .header("location")
        .to_owned();
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[
                ("content-range", "0-29999"),
                ("content-type", "application/octet-stream"),
            ],
            data2[..30000].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-29999");
    let s = t.get(&loc).await;
    assert_eq!(s.status, StatusCode::NO_CONTENT);
    assert_eq!(s.header("range"), "0-29999");
    // out of order: 416, and nothing appended
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "40000-49999")],
            data2[40000..50000].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let r = t
        .send(Method::PATCH, &loc, &[("content-range", "0-9")], data2[..10].to_vec())
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(t.get(&loc).await.header("range"), "0-29999");
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "30000-69999")],
            data2[30000..].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-69999");
    let r = t
        .send(Method::PUT, &format!("{loc}?digest={d2}"), &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.get(&format!("/v2/up/blobs/{d2}")).await.body, data2);
    // the finished upload is gone
    let r = t.get(&loc).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));

    // streamed PATCH (no Content-Range) in two parts, then PUT with the tail
    let data3: Vec<u8> = data.iter().map(|b| b.wrapping_add(2)).collect();
    let d3 = Digest::sha256_of(&data3);
    let loc = t
        .send(Method::POST, "/v2/up/blobs/uploads/", &[], Body::empty())
        .await
        .header("location")
        .to_owned();
    let stream = futures::stream::iter(
        data3[..50000]
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        t.send(Method::PATCH, &loc, &[], Body::from_stream(stream))
            .await
            .header("range"),
        "0-49999"
    );
    let r = t
        .send(Method::PUT, &format!("{loc}?digest={d3}"), &[], data3[50000..].to_vec())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.get(&format!("/v2/up/blobs/{d3}")).await.body, data3);

    // cancel
    let loc = t
        .send(Method::POST, "/v2/up/blobs/uploads/", &[], Body::empty())
        .await
        .header("location")
        .to_owned();
    t.send(Method::PATCH, &loc, &[], b"abc".to_vec()).await;
    assert_eq!(
        t.send(Method::DELETE, &loc, &[], Body::empty()).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.get(&loc).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.send(Method::DELETE, &loc, &[], Body::empty()).await.status,
        StatusCode::NOT_FOUND
    );

    // sha512 digests are accepted
    let mut h = berth::domain::Hasher::new(berth::domain::Algorithm::Sha512);
    h.update(&data);
    let d512 = h.finish();
    let r = t
        .send(
            Method::POST,
            &format!("/v2/up/blobs/uploads/?digest={d512}"),
            &[],
            data.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.get(&format!("/v2/up/blobs/{d512}")).await.body, data);
}

async fn upload_errors(t: T) {
    // digest mismatch, monolithic: nothing stored
    let wrong = Digest::sha256_of(b"other");
    let r = t
        .send(
            Method::POST,
            &format!("/v2/e/blobs/uploads/?digest={wrong}"),
            &[],
            b"data".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    assert_eq!(t.app.blobs.stat(&wrong).await.unwrap(), None);
    assert_eq!(t.app.blobs.stat(&Digest::sha256_of(b"data")).await.unwrap(), None);
    // digest mismatch on PUT: nothing stored, upload discarded
    let loc = t
        .send(Method::POST, "/v2/e/blobs/uploads/", &[], Body::empty())
        .await
        .header("location")
        .to_owned();
    let r = t
        .send(Method::PUT, &format!("{loc}?digest={wrong}"), &[], b"data".to_vec())
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    assert_eq!(t.get(&loc).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.app.blobs.stat(&Digest::sha256_of(b"data")).await.unwrap(), None);
    // malformed digests
    let loc = t
        .send(Method::POST, "/v2/e/blobs/uploads/", &[], Body::empty())
        .await
        .header("location")
        .to_owned();
    for q in ["?digest=sha256:abc", "?digest=md5:00", ""] {
        let r = t.send(Method::PUT, &format!("{loc}{q}"), &[], Body::empty()).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"), "{q}");
    }
    // unknown uploads
    let id = uuid::Uuid::new_v4();
    for m in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        let r = t
            .send(
                m.clone(),
                &format!("/v2/e/blobs/uploads/{id}?digest={wrong}"),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{m}"
        );
    }
    let r = t.get("/v2/e/blobs/uploads/not-a-uuid").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    // an upload belongs to its repository
    let r = t.get(&loc.replace("/v2/e/", "/v2/f/")).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    // bad Content-Range
    let r = t
        .send(Method::PATCH, &loc, &[("content-range", "banana")], b"x".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
}

async fn blob_ranges(t: T) {
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let d = t.blob("r", &data).await;
    let uri = format!("/v2/r/blobs/{d}");
    let r = t
        .send(Method::GET, &uri, &[("range", "bytes=10-19")], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &data[10..20]);
    assert_eq!(r.header("content-range"), "bytes 10-19/1000");
    let r = t
        .send(Method::GET, &uri, &[("range", "bytes=990-")], Body::empty())
        .await;
    assert_eq!(r.body, &data[990..]);
    let r = t.send(Method::GET, &uri, &[("range", "bytes=-5")], Body::empty()).await;
    assert_eq!(r.body, &data[995..]);
    for bad in ["bytes=1000-", "bytes=5-1", "lines=1-2", "bytes=0-1,5-6"] {
        let r = t.send(Method::GET, &uri, &[("range", bad)], Body::empty()).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        assert_eq!(r.header("content-range"), "bytes */1000");
    }
}

async fn manifest_errors(t: T) {
    let config = t.blob("m", b"{}").await;
    let good = |layer: &Digest| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 1}],
        }))
        .unwrap()
    };
    // a layer the repository lacks
    let missing = Digest::sha256_of(b"missing");
    let r = t.put_manifest("m", "v1", media::OCI_MANIFEST, &good(&missing)).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "MANIFEST_BLOB_UNKNOWN"));
    assert_eq!(r.json()["errors"][0]["detail"]["digest"], missing.to_string());
    // a blob uploaded to another repository does not count
    let elsewhere = t.blob("m-other", b"x").await;
    let r = t.put_manifest("m", "v1", media::OCI_MANIFEST, &good(&elsewhere)).await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    // digest mismatch on a PUT by digest: nothing stored
    let layer = t.blob("m", b"y").await;
    let body = good(&layer);
    let wrong = Digest::sha256_of(b"not it");
    let r = t.put_manifest("m", wrong.as_str(), media::OCI_MANIFEST, &body).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    assert!(t.app.store.manifest(&Digest::sha256_of(&body)).await.unwrap().is_none());
    assert_eq!(t.get("/v2/m/tags/list").await.json()["tags"], json!([]));
    // malformed, schema 1, oversized
    for (ct, bad) in [
        (media::OCI_MANIFEST, b"{".to_vec()),
        (media::OCI_MANIFEST, b"{\"schemaVersion\":2}".to_vec()),
        (
            media::DOCKER_SCHEMA1_SIGNED,
            br#"{"schemaVersion":1,"name":"m","tag":"v1","fsLayers":[],"history":[]}"#.to_vec(),
        ),
        (media::OCI_MANIFEST, vec![b' '; 4 * 1024 * 1024 + 1]),
    ] {
        let r = t.put_manifest("m", "v1", ct, &bad).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            "{}",
            bad.len()
        );
    }
    // an invalid tag in a PUT
    let r = t.put_manifest("m", "-bad", media::OCI_MANIFEST, &body).await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    // nothing above made a version
    assert_eq!(t.latest_version("m").await.number, 0);
    // and the good one works, also at exactly 4 MiB
    assert_eq!(
        t.put_manifest("m", "v1", media::OCI_MANIFEST, &body).await.status,
        StatusCode::CREATED
    );
    let mut big = serde_json::from_slice::<Value>(&body).unwrap();
    let pad_len = 4 * 1024 * 1024 - body.len() - r#","annotations":{"pad":""}"#.len();
    big["annotations"] = json!({"pad": "p".repeat(pad_len)});
    let big = serde_json::to_vec(&big).unwrap();
    assert_eq!(big.len(), 4 * 1024 * 1024);
    let r = t.put_manifest("m", "big", media::OCI_MANIFEST, &big).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(t.get("/v2/m/manifests/big").await.body, big);
}

async fn content_negotiation(t: T) {
    let (_, d) = t.image("neg", "1", &[b"l"]).await;
    let schema1_only = [("accept", media::DOCKER_SCHEMA1_SIGNED)];
    let r = t
        .send(Method::GET, "/v2/neg/manifests/1", &schema1_only, Body::empty())
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    let r = t
        .send(Method::HEAD, "/v2/neg/manifests/1", &schema1_only, Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // by digest Accept is ignored
    let r = t
        .send(
            Method::GET,
            &format!("/v2/neg/manifests/{d}"),
            &schema1_only,
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Accept as several header lines (docker) or one list
    let r = t
        .send(
            Method::GET,
            "/v2/neg/manifests/1",
            &[("accept", media::DOCKER_MANIFEST), ("accept", media::OCI_MANIFEST)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = format!("{}, {}", media::DOCKER_MANIFEST, media::OCI_MANIFEST);
    let r = t
        .send(Method::GET, "/v2/neg/manifests/1", &[("accept", &list)], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t
        .send(
            Method::GET,
            "/v2/neg/manifests/1",
            &[("accept", media::DOCKER_MANIFEST)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn index_needs_its_children(t: T) {
    let (m_amd, d_amd) = t.image("multi", "amd", &[b"shared", b"amd"]).await;
    let (m_arm, d_arm) = t.image("multi", "arm", &[b"shared", b"arm"]).await;
    let index = |children: &[(&Digest, usize, &str)]| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_INDEX,
            "manifests": children.iter().map(|(d, size, arch)| json!({
                "mediaType": media::OCI_MANIFEST, "digest": d, "size": size,
                "platform": {"os": "linux", "architecture": arch}
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let missing = Digest::sha256_of(b"no such manifest");
    let r = t
        .put_manifest(
            "multi",
            "latest",
            media::OCI_INDEX,
            &index(&[(&d_amd, m_amd.len(), "amd64"), (&missing, 10, "arm64")]),
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    let ix = index(&[(&d_amd, m_amd.len(), "amd64"), (&d_arm, m_arm.len(), "arm64")]);
    let r = t.put_manifest("multi", "latest", media::OCI_INDEX, &ix).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .send(
            Method::GET,
            "/v2/multi/manifests/latest",
            &[("accept", media::OCI_INDEX)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.body, ix);
    assert_eq!(r.header("content-type"), media::OCI_INDEX);
    // a client that accepts only image manifests does not get the index by tag
    let r = t
        .send(
            Method::GET,
            "/v2/multi/manifests/latest",
            &[("accept", media::OCI_MANIFEST)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let v = t.latest_version("multi").await;
    assert_eq!(v.content_summary.present[&ContentType::Manifest], 3);
    assert_eq!(
        v.content_summary.present[&ContentType::Blob],
        5,
        "two configs, shared layer once, two own layers"
    );
}

async fn tags_and_catalog_paginate(t: T) {
    for tag in ["e", "b", "a", "d", "c"] {
        t.image("pages", tag, &[b"l"]).await;
    }
    let r = t.get("/v2/pages/tags/list").await;
    assert_eq!(r.json(), json!({"name": "pages", "tags": ["a", "b", "c", "d", "e"]}));
    assert_eq!(r.header("link"), "");
    let r = t.get("/v2/pages/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], json!(["a", "b"]));
    assert_eq!(r.header("link"), "</v2/pages/tags/list?n=2&last=b>; rel=\"next\"");
    let r = t.get("/v2/pages/tags/list?n=2&last=b").await;
    assert_eq!(r.json()["tags"], json!(["c", "d"]));
    let r = t.get("/v2/pages/tags/list?n=2&last=d").await;
    assert_eq!(r.json()["tags"], json!(["e"]));
    assert_eq!(r.header("link"), "");
    assert_eq!(t.get("/v2/pages/tags/list?n=0").await.json()["tags"], json!([]));
    assert_eq!(t.get("/v2/pages/tags/list?n=x").await.status, StatusCode::BAD_REQUEST);

    for name in ["zeta", "alpha/one", "beta"] {
        t.image(name, "1", &[b"l"]).await;
    }
    let r = t.get("/v2/_catalog").await;
    assert_eq!(r.json()["repositories"], json!(["alpha/one", "beta", "pages", "zeta"]));
    let r = t.get("/v2/_catalog?n=3").await;
    assert_eq!(r.json()["repositories"], json!(["alpha/one", "beta", "pages"]));
    assert_eq!(r.header("link"), "</v2/_catalog?n=3&last=pages>; rel=\"next\"");
    assert_eq!(
        t.get("/v2/_catalog?n=3&last=pages").await.json()["repositories"],
        json!(["zeta"])
    );
}

async fn referrers(t: T) {
    let (m, subject) = t.image("art", "1", &[b"base"]).await;
    let empty = t.blob("art", b"{}").await;
    let sbom = t.blob("art", b"sbom data").await;
    let artifact = |atype: &str, layer: &Digest| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": atype,
            "config": {"mediaType": media::OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/json", "digest": layer, "size": 9}],
            "subject": {"mediaType": media::OCI_MANIFEST, "digest": subject, "size": m.len()},
            "annotations": {"org.example": atype},
        }))
        .unwrap()
    };
    let a1 = artifact("application/spdx+json", &sbom);
    let d1 = Digest::sha256_of(&a1);
    let r = t.put_manifest("art", d1.as_str(), media::OCI_MANIFEST, &a1).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), subject.as_str());
    let a2 = artifact("application/vnd.example.sig", &sbom);
    let d2 = Digest::sha256_of(&a2);
    t.put_manifest("art", d2.as_str(), media::OCI_MANIFEST, &a2).await;

    let r = t.get(&format!("/v2/art/referrers/{subject}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), media::OCI_INDEX);
    let list = r.json();
    assert_eq!(list["mediaType"], media::OCI_INDEX);
    assert_eq!(list["manifests"].as_array().unwrap().len(), 2);
    let r = t
        .get(&format!(
            "/v2/art/referrers/{subject}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    let list = r.json();
    assert_eq!(list["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(list["manifests"][0]["digest"], d2.to_string());
    assert_eq!(list["manifests"][0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(
        list["manifests"][0]["annotations"]["org.example"],
        "application/vnd.example.sig"
    );
    // unknown subject: an empty list; referrers in another repository are not listed
    let r = t.get(&format!("/v2/art/referrers/{}", Digest::sha256_of(b"x"))).await;
    assert_eq!(r.json()["manifests"], json!([]));
    t.image("art2", "1", &[b"z"]).await;
    assert_eq!(
        t.get(&format!("/v2/art2/referrers/{subject}")).await.json()["manifests"],
        json!([])
    );
    assert_eq!(t.get("/v2/art/referrers/sha256:nope").await.code(), "DIGEST_INVALID");
}

async fn cross_repository_mount(t: T) {
    let d = t.blob("src", b"mount me").await;
    let r = t
        .send(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/dst/blobs/{d}"));
    assert_eq!(t.get(&format!("/v2/dst/blobs/{d}")).await.body, b"mount me");
    // a mount that can't happen falls back to an upload session
    let other = Digest::sha256_of(b"not there");
    let r = t
        .send(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={other}&from=src"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = t
        .send(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=nosuch"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

async fn deletes_make_versions(t: T) {
    let (_, d1) = t.image("del", "one", &[b"shared", b"only-one"]).await;
    let (_, _d2) = t.image("del", "two", &[b"shared", b"only-two"]).await;
    t.send(
        Method::PUT,
        "/v2/del/manifests/alias",
        &[("content-type", media::OCI_MANIFEST)],
        t.get(&format!("/v2/del/manifests/{d1}")).await.body,
    )
    .await;
    let before = t.latest_version("del").await.number;
    // delete a tag
    assert_eq!(
        t.send(Method::DELETE, "/v2/del/manifests/alias", &[], Body::empty())
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let v = t.latest_version("del").await;
    assert_eq!(v.number, before + 1);
    assert_eq!(v.content_summary.removed[&ContentType::Tag], 1);
    assert_eq!(t.get("/v2/del/manifests/alias").await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&format!("/v2/del/manifests/{d1}")).await.status, StatusCode::OK);
    // delete a manifest by digest: its tags and the blobs only it used go with it
    assert_eq!(
        t.send(Method::DELETE, &format!("/v2/del/manifests/{d1}"), &[], Body::empty())
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let v = t.latest_version("del").await;
    assert_eq!(v.content_summary.removed[&ContentType::Manifest], 1);
    assert_eq!(v.content_summary.removed[&ContentType::Tag], 1);
    assert_eq!(
        v.content_summary.removed[&ContentType::Blob],
        2,
        "its config and its own layer"
    );
    assert_eq!(t.get("/v2/del/manifests/one").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.get(&format!("/v2/del/blobs/{}", Digest::sha256_of(b"shared")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        t.get(&format!("/v2/del/blobs/{}", Digest::sha256_of(b"only-one")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.get("/v2/del/tags/list").await.json()["tags"], json!(["two"]));
    // deleting what is not there
    assert_eq!(
        t.send(Method::DELETE, &format!("/v2/del/manifests/{d1}"), &[], Body::empty())
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        t.send(Method::DELETE, "/v2/del/manifests/nope", &[], Body::empty())
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
    // a blob a manifest uses cannot be deleted; an unused upload can
    let shared = Digest::sha256_of(b"shared");
    assert_eq!(
        t.send(Method::DELETE, &format!("/v2/del/blobs/{shared}"), &[], Body::empty())
            .await
            .code(),
        "DENIED"
    );
    let loose = t.blob("del", b"loose").await;
    assert_eq!(
        t.send(Method::DELETE, &format!("/v2/del/blobs/{loose}"), &[], Body::empty())
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        t.get(&format!("/v2/del/blobs/{loose}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.send(Method::DELETE, &format!("/v2/del/blobs/{loose}"), &[], Body::empty())
            .await
            .code(),
        "BLOB_UNKNOWN"
    );
}

async fn versions_on_push(t: T) {
    let (_, d1) = t.image("ver", "latest", &[b"a"]).await;
    let v1 = t.latest_version("ver").await;
    assert_eq!(v1.number, 1);
    assert_eq!(v1.content_summary.added[&ContentType::Manifest], 1);
    assert_eq!(v1.content_summary.added[&ContentType::Tag], 1);
    assert_eq!(v1.content_summary.added[&ContentType::Blob], 2);
    // the same push again changes nothing and makes no version
    let body = t.get(&format!("/v2/ver/manifests/{d1}")).await.body;
    t.put_manifest("ver", "latest", media::OCI_MANIFEST, &body).await;
    assert_eq!(t.latest_version("ver").await.number, 1);
    // moving the tag: one tag removed, one added
    t.image("ver", "latest", &[b"b"]).await;
    let v2 = t.latest_version("ver").await;
    assert_eq!(v2.number, 2);
    assert_eq!(v2.content_summary.removed[&ContentType::Tag], 1);
    assert_eq!(v2.content_summary.added[&ContentType::Tag], 1);
    assert_eq!(v2.content_summary.present[&ContentType::Tag], 1);
    assert_eq!(v2.content_summary.present[&ContentType::Manifest], 2);
}

async fn bad_names_and_routes(t: T) {
    for uri in [
        "/v2/UPPER/tags/list",
        "/v2/a/../b/manifests/x",
        "/v2/a%2Fb/tags/list",
        "/v2/-a/blobs/uploads/",
    ] {
        let r = t.send(Method::GET, uri, &[], Body::empty()).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "NAME_INVALID"), "{uri}");
    }
    let long = "a".repeat(256);
    assert_eq!(t.get(&format!("/v2/{long}/tags/list")).await.code(), "NAME_INVALID");
    let r = t.get("/v2/x/unknown").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.send(Method::POST, "/v2/x/manifests/latest", &[], Body::empty()).await;
    assert_eq!((r.status, r.code()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
    assert_eq!(t.get("/v2/x/blobs/sha256:1234").await.code(), "DIGEST_INVALID");
    assert_eq!(t.get("/v2/x/manifests/sha256:1234").await.code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn concurrent_pushes_to_one_repository_all_land() {
    let t = Arc::new(T::memory());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let layer = format!("layer {i}");
            t.image("busy", &format!("t{i}"), &[layer.as_bytes()]).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let r = t.get("/v2/busy/tags/list").await;
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), 8);
    assert_eq!(t.latest_version("busy").await.number, 8);
}

/// A table that counts the calls made through it (each is one DynamoDB request on AWS).
struct Counting {
    inner: berth::adapters::memory::MemoryTable,
    reads: std::sync::atomic::AtomicUsize,
    writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl berth::ports::Table for Counting {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<berth::ports::Row>, berth::ports::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(pk, sk).await
    }
    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: berth::ports::Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, berth::ports::StoreError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.put_expiring(pk, sk, value, cond, expires_at).await
    }
    async fn delete(&self, pk: &str, sk: &str, cond: berth::ports::Cond) -> Result<(), berth::ports::StoreError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.delete(pk, sk, cond).await
    }
    async fn query(
        &self,
        pk: &str,
        q: berth::ports::Query,
    ) -> Result<Vec<berth::ports::Row>, berth::ports::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.query(pk, q).await
    }
    async fn transact(&self, writes: Vec<berth::ports::Write>) -> Result<(), berth::ports::StoreError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.transact(writes).await
    }
}

/// Serving a manifest by tag costs a fixed, small number of metadata reads (DynamoDB requests
/// on AWS), however many tags and versions the repository has: the distribution, the
/// repository, the tag's membership rows, the manifest record.
#[tokio::test]
async fn a_manifest_by_tag_costs_four_metadata_reads() {
    let table = Arc::new(Counting {
        inner: berth::adapters::memory::MemoryTable::new(),
        reads: Default::default(),
        writes: Default::default(),
    });
    let jobs = Arc::new(berth::adapters::local_jobs::LocalJobQueue::new(table.clone()));
    let app = App::new(
        table.clone(),
        Arc::new(berth::adapters::memory::MemoryBlobStore::new()),
        jobs,
        Default::default(),
    );
    let t = T {
        router: app.router(),
        app,
        _dir: None,
    };
    for i in 0..20 {
        t.image("count/me", &format!("t{i}"), &[format!("layer {i}").as_bytes()])
            .await;
    }
    t.image("count/me", "t5", &[b"moved"]).await; // a tag with history
    for reference in ["t5", "t19"] {
        let before = table.reads.load(std::sync::atomic::Ordering::SeqCst);
        let r = t
            .send(
                Method::GET,
                &format!("/v2/count/me/manifests/{reference}"),
                &[("accept", media::OCI_MANIFEST)],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let reads = table.reads.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(reads, 4, "{reference}: reads per manifest GET by tag");
    }
}

/// An upload session lives for the upload retention from its start; after that every use of
/// it is `BLOB_UPLOAD_UNKNOWN`, and the embedded store's housekeeping removes its staged bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let settings = berth::app::Settings {
        retention: berth::store::Retention {
            upload: std::time::Duration::from_secs(2),
            tasks: None,
        },
        ..Default::default()
    };
    let local = LocalApp::embedded(dir.path(), settings).await.unwrap();
    let t = T {
        router: local.app.router(),
        app: local.app.clone(),
        _dir: None,
    };
    let r = t.send(Method::POST, "/v2/x/blobs/uploads/", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location");
    let r = t.send(Method::PATCH, loc, &[], b"half a layer".to_vec()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(std::fs::read_dir(dir.path().join("uploads")).unwrap().count(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let d = Digest::sha256_of(b"half a layer");
    for (m, body) in [(Method::GET, ""), (Method::PATCH, "more"), (Method::PUT, "")] {
        let uri = format!("{loc}{}digest={d}", if loc.contains('?') { "&" } else { "?" });
        let r = t.send(m.clone(), &uri, &[], body.as_bytes().to_vec()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{m}"
        );
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let sweeper = local
        .start_housekeeping(std::time::Duration::from_secs(3600), rx)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(dir.path().join("uploads")).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not remove the staged upload"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    sweeper.await.unwrap();
}

//! Router tests for `/v2`, in process (`oneshot`), on the in-memory and embedded adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use berth::domain::{media, ContentType, Digest};
use common::oci::{both, T};
use http::{Method, StatusCode};
use serde_json::{json, Value};

both!(
    ping,
    push_and_pull_an_image,
    manifest_errors,
    content_negotiation,
    index_needs_its_children,
    tags_and_catalog_paginate,
    referrers,
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

//! Router tests for `/v2` on the AWS backend (S3, DynamoDB, SQS) on a moto server at
//! `BERTH_TEST_MOTO`: a blob GET answers `307` to a presigned S3 URL, and following it gives
//! the bytes. Built with the `moto` feature; without the endpoint the tests fail, saying how
//! to start moto.
#![cfg(feature = "moto")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::Router;
use berth::app::AwsApp;
use berth::domain::{media, Digest};
use common::http::{Req, Resp};
use common::moto::{endpoint, settings};
use http::{Method, StatusCode};
use serde_json::json;

async fn app() -> AwsApp {
    let sdk = berth::adapters::aws::sdk_config_for(&endpoint(), "us-east-1", "testing", "testing").await;
    AwsApp::connect(&sdk, &settings(true), Default::default())
        .await
        .unwrap()
}

async fn send(router: &Router, method: Method, uri: &str, body: impl Into<Body>) -> Resp {
    Req::new(method, uri).body(body).send(router).await
}

/// Follows a redirect as a registry client does: a plain GET, no credentials.
async fn follow(location: &str) -> Vec<u8> {
    let r = reqwest::get(location).await.unwrap();
    assert!(r.status().is_success(), "{location}: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_get_redirects_to_a_presigned_url() {
    let aws = app().await;
    let router = aws.app.router();

    // Given an image pushed with a monolithic and a chunked blob upload
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = Digest::sha256_of(config);
    let r = send(
        &router,
        Method::POST,
        &format!("/v2/aws/app/blobs/uploads/?digest={cd}"),
        config.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));

    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ld = Digest::sha256_of(&layer);
    let r = send(&router, Method::POST, "/v2/aws/app/blobs/uploads/", Body::empty()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let mut location = r.header("location").to_owned();
    for part in layer.chunks(100_000) {
        let r = send(&router, Method::PATCH, &location, part.to_vec()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        location = r.header("location").to_owned();
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = send(
        &router,
        Method::PUT,
        &format!("{location}{sep}digest={ld}"),
        Body::empty(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}],
    }))
    .unwrap();
    let resp = Req::new(Method::PUT, "/v2/aws/app/manifests/1.0")
        .header("content-type", media::OCI_MANIFEST)
        .body(manifest.clone())
        .send(&router)
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);

    // When a client GETs a blob, Then it is sent to S3 with a 307, and S3 has the bytes
    for (d, bytes) in [(&ld, &layer[..]), (&cd, &config[..])] {
        let r = send(&router, Method::GET, &format!("/v2/aws/app/blobs/{d}"), Body::empty()).await;
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
        assert!(r.body.is_empty());
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        let to = r.header("location");
        assert!(to.starts_with(&endpoint()), "{to}");
        assert!(to.contains("X-Amz-Signature="), "{to}");
        assert_eq!(follow(to).await, bytes);
    }
    // HEAD answers from the service itself
    let r = send(&router, Method::HEAD, &format!("/v2/aws/app/blobs/{ld}"), Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), layer.len().to_string());
    // manifests are served by the service, from S3
    let r = send(&router, Method::GET, "/v2/aws/app/manifests/1.0", Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, manifest);
    assert_eq!(r.header("content-type"), media::OCI_MANIFEST);
    // one version per pushed tag, in DynamoDB
    let repo = aws.app.store.repository_by_name("aws/app").await.unwrap().unwrap();
    assert_eq!(repo.latest_version, 1);
    // unknown blobs are still 404
    let r = send(
        &router,
        Method::GET,
        &format!("/v2/aws/app/blobs/{}", Digest::sha256_of(b"nope")),
        Body::empty(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

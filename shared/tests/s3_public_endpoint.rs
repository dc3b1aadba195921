//! Presigned blob URLs for clients that reach S3 at another address than Berth does
//! (`BERTH_S3_PUBLIC_ENDPOINT`), and start-up errors that name what they tried, against a moto
//! server at `BERTH_TEST_MOTO`. Built with the `moto` feature; without the endpoint the tests
//! fail, saying how to start moto.
#![cfg(feature = "moto")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use berth::app::{AwsApp, S3Endpoints};
use berth::domain::Digest;
use common::moto::{endpoint, settings};

/// The same moto server under another name: `localhost` for `127.0.0.1`.
fn other_address(url: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let host = if u.host_str() == Some("localhost") {
        "127.0.0.1"
    } else {
        "localhost"
    };
    u.set_host(Some(host)).unwrap();
    u.as_str().trim_end_matches('/').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_name_the_public_endpoint_and_work_there() {
    // Given Berth reaching S3 at one address and clients at another
    let moto = endpoint();
    let public = other_address(&moto);
    let sdk = berth::adapters::aws::sdk_config_for(&moto, "us-east-1", "testing", "testing").await;
    let s3 = S3Endpoints {
        endpoint: None,
        public: Some(public.clone()),
    };
    let aws = AwsApp::connect_with(&sdk, &settings(true), &s3, Default::default())
        .await
        .unwrap();
    let bytes = b"a blob clients fetch from S3 themselves".to_vec();
    let digest = Digest::sha256_of(&bytes);
    let body: berth::ports::ByteStream = Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(bytes.clone()))]));
    aws.app.blobs.put(&digest, body).await.unwrap();

    // When a blob GET is redirected
    let url = aws
        .app
        .blobs
        .redirect_url(&digest, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();

    // Then the URL names the public endpoint's host and scheme, and fetching it there gives the bytes
    let (got, want) = (url::Url::parse(&url).unwrap(), url::Url::parse(&public).unwrap());
    assert_eq!(
        (got.scheme(), got.host_str(), got.port()),
        (want.scheme(), want.host_str(), want.port()),
        "{url}"
    );
    let r = reqwest::get(&url).await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    // and without a public endpoint the URL names Berth's own
    let plain = AwsApp::connect(&sdk, &settings(true), Default::default())
        .await
        .unwrap();
    plain
        .app
        .blobs
        .put(
            &digest,
            Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(bytes.clone()))])),
        )
        .await
        .unwrap();
    let url = plain
        .app
        .blobs
        .redirect_url(&digest, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    let own = url::Url::parse(&moto).unwrap();
    assert_eq!(url::Url::parse(&url).unwrap().host_str(), own.host_str(), "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_is_named_in_the_error() {
    // Given an endpoint that resolves nowhere
    let nowhere = "http://berth-test.invalid:45999";
    let sdk = berth::adapters::aws::sdk_config_for(nowhere, "us-east-1", "testing", "testing").await;
    let aws = settings(false);
    // When Berth starts on it, Then the error names the table and the endpoint it tried
    let err = AwsApp::connect(&sdk, &aws, Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&aws.table) && err.contains(nowhere), "{err}");
}

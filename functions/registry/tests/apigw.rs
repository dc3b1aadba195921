//! The registry router behind API Gateway: HTTP API (payload format 2.0) events, as Lambda
//! delivers them, through `lambda_http`'s conversion, into the same router the local binary
//! serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use berth::app::LocalApp;
use lambda_http::request::from_str;
use sha2::Digest as _;
use tower::ServiceExt;

fn event(method: &str, path: &str, query: &str, headers: serde_json::Value, body: Option<&[u8]>) -> String {
    let (body, b64) = match body {
        Some(b) => (
            serde_json::json!(base64::engine::general_purpose::STANDARD.encode(b)),
            true,
        ),
        None => (serde_json::Value::Null, false),
    };
    serde_json::json!({
        "version": "2.0",
        "routeKey": "ANY /v2/{proxy+}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "reg.example.com",
            "domainPrefix": "reg", "requestId": "r1", "routeKey": "ANY /v2/{proxy+}", "stage": "$default",
            "time": "27/Nov/2026:16:00:00 +0000", "timeEpoch": 1795000000000u64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"}
        },
        "body": body,
        "isBase64Encoded": b64
    })
    .to_string()
}

#[tokio::test]
async fn api_gateway_v2_events_reach_the_registry() {
    let app = LocalApp::in_memory().app;
    let router = app.registry_router();

    // the ping, as docker sends it first
    let req = from_str(&event(
        "GET",
        "/v2/",
        "",
        serde_json::json!({"host": "reg.example.com"}),
        None,
    ))
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200, "open mode in this test: no token needed");
    assert_eq!(resp.headers()["docker-distribution-api-version"], "registry/2.0");

    // a monolithic blob upload with a binary (base64-encoded) body, then the blob back
    let blob: Vec<u8> = (0..=255u8).collect();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)));
    let req = from_str(&event(
        "POST",
        "/v2/team/app/blobs/uploads/",
        &format!("digest={digest}"),
        serde_json::json!({"host": "reg.example.com", "content-type": "application/octet-stream"}),
        Some(&blob),
    ))
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    let req = from_str(&event(
        "GET",
        &format!("/v2/team/app/blobs/{digest}"),
        "",
        serde_json::json!({"host": "reg.example.com", "range": "bytes=0-9"}),
        None,
    ))
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 206);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert_eq!(&body[..], &blob[..10]);

    // API Gateway joins repeated Accept headers with commas; the negotiation still works
    let req = from_str(&event(
        "GET",
        "/v2/team/app/manifests/latest",
        "",
        serde_json::json!({"host": "reg.example.com", "accept": "application/vnd.docker.distribution.manifest.v1+prettyjws,application/json"}),
        None,
    ))
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn bodies_too_large_for_lambda_get_a_clear_413() {
    let app = LocalApp::in_memory().app;
    let router = app
        .registry_router()
        .layer(axum::middleware::from_fn(berth::lambda::body_limit));
    let req = http::Request::builder()
        .method("PATCH")
        .uri("/v2/team/app/blobs/uploads/00000000-0000-0000-0000-000000000000")
        .header("content-length", (7 * 1024 * 1024).to_string())
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["errors"][0]["code"], "SIZE_INVALID");
}

//! Router tests for `/v2` uploads, in process, on the in-memory and embedded adapters:
//! monolithic, chunked and streamed uploads and their errors, blob ranges, cross-repository
//! mounts, and upload sessions that expire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use berth::app::LocalApp;
use berth::domain::Digest;
use common::oci::{both, T};
use http::{Method, StatusCode};

both!(upload_flows, upload_errors, blob_ranges, cross_repository_mount);

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
    let t = T::of(local.app.clone());
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

//! The reqwest upstream adapter against a real Debian `docker-registry` filled with
//! generated images (multi-arch OCI index, docker schema 2 image, cosign-style signature).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use berth::adapters::upstream_http::HttpUpstream;
use berth::domain::{media, Digest, Hasher};
use berth::ports::{Upstream, UpstreamConfig, UpstreamError};
use futures::StreamExt;

fn cfg(base: String, name: &str) -> UpstreamConfig {
    UpstreamConfig {
        key: format!("{base}/{name}"),
        url: base,
        upstream_name: berth::domain::RepoName::parse(name).unwrap(),
        username: None,
        password: None,
        tls_validation: true,
        download_concurrency: Some(2),
        rate_limit: None,
        max_retries: Some(1),
        total_timeout: None,
        connect_timeout: None,
        read_timeout: None,
        headers: vec![],
        proxy: None,
        tls: Default::default(),
    }
}

#[tokio::test]
async fn reads_tags_manifests_and_blobs_from_docker_registry() {
    let reg = common::DockerRegistry::start().await;
    let fx = common::fill(&reg, "test/fixture").await;
    let up = HttpUpstream::new(cfg(reg.base(), "test/fixture")).unwrap();

    // tags (docker-registry 2.8 sends them in one page; pagination is tested on a fake)
    let page = up.tags_page(None).await.unwrap();
    let mut tags = page.tags.clone();
    tags.sort();
    let mut want: Vec<String> = fx.tags.iter().map(|(t, ..)| t.clone()).collect();
    want.sort();
    assert_eq!(tags, want);
    assert_eq!(page.next, None);

    // manifests: HEAD gives the digest and type; GET the exact bytes
    let head = up.head_manifest("multi").await.unwrap();
    assert_eq!(head.digest.as_ref(), Some(&fx.index));
    assert_eq!(head.media_type.as_deref(), Some(media::OCI_INDEX));
    let m = up.get_manifest("docker").await.unwrap();
    assert_eq!(m.bytes, fx.manifest("docker"));
    assert_eq!(m.media_type.as_deref(), Some(media::DOCKER_MANIFEST));
    assert_eq!(m.digest_header.as_ref(), Some(&fx.docker));
    let child = up.get_manifest(fx.arm64.as_str()).await.unwrap();
    assert_eq!(Digest::sha256_of(&child.bytes), fx.arm64);
    let sig = up.head_manifest(&fx.signature_tag).await.unwrap();
    assert_eq!(sig.digest.as_ref(), Some(&fx.signature));

    // blobs stream with the right bytes
    for (d, bytes) in &fx.blobs {
        let b = up.get_blob(d).await.unwrap();
        assert_eq!(b.size, Some(bytes.len() as u64));
        let mut h = Hasher::new(d.algorithm());
        let mut n = 0;
        let mut body = b.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            n += chunk.len();
            h.update(&chunk);
        }
        assert_eq!((h.finish(), n), (d.clone(), bytes.len()));
    }

    // what is not there
    assert!(matches!(
        up.head_manifest("nope").await,
        Err(UpstreamError::NotFound { .. })
    ));
    assert!(matches!(
        up.get_blob(&Digest::sha256_of(b"nope")).await,
        Err(UpstreamError::NotFound { .. })
    ));
    let missing = HttpUpstream::new(cfg(reg.base(), "no/such/repo")).unwrap();
    let e = missing.tags_page(None).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("/v2/no/such/repo/tags/list"), "{e}");
    // docker-registry 2.8 has neither the referrers API nor the signature extension
    assert_eq!(up.referrers(&fx.docker).await.unwrap(), None);
    assert!(!up.supports_signatures().await.unwrap());
}

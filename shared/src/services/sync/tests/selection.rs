//! What a sync selects and brings: tags, filters, literal includes, schema 1, signatures,
//! cosign companions and referrers, policies, and the additive and mirror versions.

use super::*;

#[tokio::test]
async fn syncs_every_tag_with_progress_and_a_version() {
    let h = H::new().await;
    h.fake.with(|s| s.page_size = 2);
    h.fake.tagged_image("a", &[b"l1", b"l2"]);
    h.fake.tagged_image("b", &[b"l1", b"l3"]);
    let c1 = h.fake.image("c1", &[b"l4"]);
    let c2 = h.fake.image("c2", &[b"l5"]);
    h.fake.index("multi", &[c1, c2]);

    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert!(t.started.is_some() && t.finished.is_some());
    let created = ResourceRef::RepositoryVersion {
        repository: h.repo.id,
        kind: RepositoryKind::Mirror,
        number: 1,
    };
    assert_eq!(t.created_resources, vec![created.clone()]);
    assert_eq!(t.result, Some(created));
    // 4 configs + 5 layers, 5 manifests, 3 tags
    assert_eq!(counts(&h.summary().await.added), (9, 5, 3, 0));
    let pages = h.fake.calls().iter().filter(|c| c.starts_with("tags")).count();
    assert_eq!(pages, 2, "the tag list is paginated");
    let tl = report(&t, "sync.downloading.tag_list").unwrap();
    assert_eq!((tl.state.as_str(), tl.done), ("completed", 2));
    let pm = report(&t, "sync.processing.manifest").unwrap();
    assert_eq!((pm.total, pm.done), (Some(3), 3));
    let da = report(&t, "sync.downloading.artifacts").unwrap();
    assert_eq!((da.total, da.done), (Some(9), 9));
    let ac = report(&t, "associating.content").unwrap();
    assert_eq!(ac.done, 17);
    for d in h.store.content(&h.repo, 1, ContentType::Blob, None, 100).await.unwrap() {
        let ContentKey::Blob(d) = d else { unreachable!() };
        assert!(h.blobs.stat(&d).await.unwrap().is_some());
        assert!(h.store.blob(&d).await.unwrap().is_some());
    }

    // a second sync with nothing new: no version, and known manifests are not fetched again
    let before = h.fake.calls().len();
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed);
    assert!(t.created_resources.is_empty());
    assert_eq!(h.latest().await, 1);
    let again = &h.fake.calls()[before..];
    assert!(
        !again.iter().any(|c| c.starts_with("get ") || c.starts_with("blob ")),
        "{again:?}"
    );
}

#[tokio::test]
async fn additive_then_mirror_like_pulp() {
    let mut h = H::new().await;
    h.fake.tagged_image("manifest_a", &[b"l1", b"l2"]);
    h.fake.tagged_image("manifest_b", &[b"l1", b"l3"]);
    let c1 = h.fake.image("c1", &[b"m1", b"m2"]);
    let c2 = h.fake.image("c2", &[b"m3"]);
    h.fake.index("ml_i", &[c1, c2]);

    h.set_remote(|r| r.includes = Some(vec!["manifest_a".into(), "manifest_b".into()]))
        .await;
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let s = h.summary().await;
    assert_eq!(counts(&s.added), (5, 2, 2, 0));

    h.set_remote(|r| r.includes = Some(vec!["ml_*".into()])).await;
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let s = h.summary().await;
    assert_eq!(counts(&s.added), (5, 3, 1, 0));
    assert!(s.removed.is_empty());

    let t = h.sync(true).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let s = h.summary().await;
    assert_eq!(h.latest().await, 3);
    assert_eq!(counts(&s.removed), (5, 2, 2, 0));
    assert_eq!(counts(&s.present), (5, 3, 1, 0));
    assert_eq!(h.tags().await, vec!["ml_i"]);
    assert!(report(&t, "unassociating.content").is_some_and(|r| r.done == 9));
}

#[tokio::test]
async fn filters_pick_tags_and_digests() {
    let mut h = H::new().await;
    for t in ["v1.0", "v1.1", "v1.2-rc", "v2.0", "latest"] {
        h.fake.tagged_image(t, &[t.as_bytes()]);
    }
    let untagged = h.fake.image("untagged", &[b"u"]);
    h.set_remote(|r| {
        r.includes = Some(vec!["v1*".into(), untagged.to_string()]);
        r.excludes = Some(vec!["*-rc".into()]);
    })
    .await;
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(h.tags().await, vec!["v1.0", "v1.1"]);
    assert!(h.has(ContentKey::Manifest(untagged)).await);
    assert_eq!(counts(&h.summary().await.present), (6, 3, 2, 0));
    assert!(h.fake.calls().iter().any(|c| c.starts_with("tags")));
}

#[tokio::test]
async fn literal_includes_do_not_list_tags() {
    let mut h = H::new().await;
    for i in 0..50 {
        h.fake.tagged_image(&format!("t{i}"), &[format!("l{i}").as_bytes()]);
    }
    let d = h.fake.image("by-digest", &[b"x"]);
    h.set_remote(|r| r.includes = Some(vec!["t7".into(), "t9".into(), "nope".into(), d.to_string()]))
        .await;
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let calls = h.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("tags")), "{calls:?}");
    assert_eq!(h.tags().await, vec!["t7", "t9"]);
    assert!(h.has(ContentKey::Manifest(d)).await);
    assert_eq!(report(&t, "sync.downloading.tag_list").unwrap().state, "skipped");
    let missing = report(&t, "sync.skipped.missing").unwrap();
    assert!(missing.message.contains("nope"), "{}", missing.message);

    // when nothing asked for exists, the sync fails rather than mirroring nothing
    h.set_remote(|r| r.includes = Some(vec!["gone".into()])).await;
    let t = h.sync(true).await;
    assert_eq!(t.state, TaskState::Failed);
    assert!(t.error.unwrap().contains("none of the included"));
    assert_eq!(h.latest().await, 1);
}

#[tokio::test]
async fn a_moved_tag_replaces_the_old_tag_unit() {
    let h = H::new().await;
    let old = h.fake.tagged_image("latest", &[b"one"]);
    assert_eq!(h.sync(false).await.state, TaskState::Completed);
    let new = h.fake.image("rebuilt", &[b"two"]);
    h.fake.tag("latest", &new);
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let s = h.summary().await;
    assert_eq!(counts(&s.added), (2, 1, 1, 0));
    assert_eq!(counts(&s.removed), (0, 0, 1, 0));
    assert_eq!(h.tags().await, vec!["latest"]);
    let v = h.latest().await;
    assert_eq!(
        h.store.tag(&h.repo, v, &Tag::parse("latest").unwrap()).await.unwrap(),
        Some(new)
    );
    // additive: the old manifest stays
    assert!(h.has(ContentKey::Manifest(old)).await);
}

#[tokio::test]
async fn schema1_tags_are_skipped_with_a_warning() {
    let h = H::new().await;
    h.fake.tagged_image("good", &[b"g"]);
    let s1 = h.fake.manifest(
        json!({"schemaVersion": 1, "name": "repo", "tag": "old", "fsLayers": []}),
        media::DOCKER_SCHEMA1_SIGNED,
    );
    h.fake.tag("old", &s1);
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(h.tags().await, vec!["good"]);
    let w = report(&t, "sync.skipped.schema1").unwrap();
    assert!(w.message.contains("old"), "{}", w.message);
    assert!(
        h.store.manifest(&s1).await.unwrap().is_none(),
        "schema 1 is never stored"
    );
    assert!(!h.fake.calls().contains(&"get old".to_string()));
}

#[tokio::test]
async fn signed_only_keeps_signed_images_with_their_signatures() {
    let mut h = H::new().await;
    let a = h.fake.tagged_image("a", &[b"1"]);
    let sig = h.fake.cosign(&a);
    let b = h.fake.tagged_image("b", &[b"2"]);
    // an attestation of the unsigned image does not make it signed, and does not come along
    let att = h.fake.image("att", &[b"in-toto"]);
    h.fake.tag(&format!("sha256-{}.att", b.hex()), &att);
    let c = h.fake.tagged_image("c", &[b"3"]);
    h.fake.with(|s| {
        s.lookaside.insert(
            c.clone(),
            vec![Bytes::from_static(b"gpg-1"), Bytes::from_static(b"gpg-2")],
        )
    });
    h.set_remote(|r| r.sigstore = Some("http://lookaside".into())).await;
    let job = h.job(false, true).await;
    let t = h.run(&job).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let tags = h.tags().await;
    assert_eq!(
        tags,
        vec!["a".to_string(), "c".into(), format!("sha256-{}.sig", a.hex())]
    );
    assert!(h.has(ContentKey::Manifest(sig)).await);
    assert!(!h.has(ContentKey::Manifest(att)).await);
    assert_eq!(counts(&h.summary().await.present).3, 2);
    let sigs = h.store.signatures_of(&c).await.unwrap();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0].kind, SignatureType::Atomic);
    assert!(report(&t, "sync.skipped.unsigned").unwrap().message.contains('b'));
    // the lookaside is read until the first miss
    assert!(h.fake.calls().contains(&format!("lookaside {c} 3")));
    assert!(!h.fake.calls().contains(&format!("lookaside {c} 4")));
}

#[tokio::test]
async fn extension_signatures_are_content() {
    let h = H::new().await;
    let a = h.fake.tagged_image("a", &[b"1"]);
    h.fake.with(|s| {
        s.supports_signatures = true;
        s.extension.insert(a.clone(), vec![Bytes::from_static(b"sig")]);
    });
    assert_eq!(h.sync(false).await.state, TaskState::Completed);
    let d = Digest::sha256_of(b"sig");
    assert!(h.has(ContentKey::Signature(d.clone())).await);
    let rec = h.store.signature(&d).await.unwrap().unwrap();
    assert_eq!(rec.signed, a);
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(rec.data).unwrap(),
        b"sig"
    );
}

#[tokio::test]
async fn cosign_companions_and_referrers_come_along_despite_filters() {
    let mut h = H::new().await;
    let a = h.fake.tagged_image("a", &[b"1"]);
    h.fake.tagged_image("b", &[b"2"]);
    let sig = h.fake.cosign(&a);
    let sbom = h.fake.image("sbom", &[b"spdx"]);
    h.fake
        .with(|s| s.referrers = Some(HashMap::from([(a.clone(), vec![sbom.clone()])])));
    // wildcard includes: companions found in the tag list
    h.set_remote(|r| r.includes = Some(vec!["[a]".into()])).await;
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(h.tags().await, vec!["a".to_string(), format!("sha256-{}.sig", a.hex())]);
    assert!(h.has(ContentKey::Manifest(sig.clone())).await);
    assert!(h.has(ContentKey::Manifest(sbom.clone())).await);

    // literal includes: companions found by HEAD
    let h2 = {
        let mut h2 = H::new().await;
        h2.fake = h.fake.clone();
        h2.svc = Arc::new(
            SyncService::new(h2.store.clone(), h2.blobs.clone(), Arc::new(Factory(h.fake.clone()))).with_settings(
                SyncSettings {
                    poll: Duration::from_millis(10),
                    ..Default::default()
                },
            ),
        );
        h2.set_remote(|r| r.includes = Some(vec!["a".into()])).await;
        h2
    };
    h2.fake.with(|s| s.calls.clear());
    let t = h2.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert!(!h2.fake.calls().iter().any(|c| c.starts_with("tags")));
    assert_eq!(
        h2.tags().await,
        vec!["a".to_string(), format!("sha256-{}.sig", a.hex())]
    );
    assert!(h2.has(ContentKey::Manifest(sbom)).await);
}

#[tokio::test]
async fn on_demand_stores_manifests_and_configs_only() {
    let mut h = H::new().await;
    let a = h.fake.tagged_image("a", &[b"layer-one", b"layer-two"]);
    h.set_remote(|r| r.policy = Policy::OnDemand).await;
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(counts(&h.summary().await.added), (3, 1, 1, 0));
    let m = h.store.manifest(&a).await.unwrap().unwrap();
    let config = m.parsed.config.unwrap().digest;
    assert!(h.blobs.stat(&config).await.unwrap().is_some());
    for l in &m.parsed.layers {
        assert!(h.blobs.stat(&l.digest).await.unwrap().is_none());
        assert!(h.has(ContentKey::Blob(l.digest.clone())).await);
        let lazy = h.store.lazy_blob(h.repo.id, &l.digest).await.unwrap().unwrap();
        assert_eq!((lazy.remote, lazy.size), (h.remote.id, l.size));
    }
    assert!(!h
        .fake
        .calls()
        .iter()
        .any(|c| c.contains("blob sha256") && !c.contains(config.as_str())));
}

#[test]
fn cosign_tags_are_recognised() {
    let hex = "a".repeat(64);
    assert_eq!(
        cosign_subject(&format!("sha256-{hex}.sig")),
        Some((hex.as_str(), ".sig"))
    );
    assert_eq!(cosign_subject(&format!("sha256-{hex}")), Some((hex.as_str(), "")));
    assert_eq!(cosign_subject(&format!("sha256-{hex}.foo")), None);
    assert_eq!(cosign_subject("sha256-abc.sig"), None);
    assert_eq!(cosign_subject("latest"), None);
}

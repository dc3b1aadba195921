//! Sync service tests on the memory adapters and an in-memory fake upstream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::adapters::memory::{MemoryBlobStore, MemoryTable};
use crate::domain::media;
use crate::ports::{AtomicSignature, ManifestHead, TagPage, UpstreamBlob, UpstreamConfig, UpstreamManifest};
use crate::services::SYNC_TASK_NAME;
use crate::store::{RepositoryKind, Task};

// ---- the fake upstream -------------------------------------------------------------------

#[derive(Default)]
struct State {
    tags: BTreeMap<String, Digest>,
    manifests: HashMap<Digest, (Bytes, String)>,
    blobs: HashMap<Digest, Bytes>,
    /// Blobs served with other bytes than their digest says.
    corrupt: HashSet<Digest>,
    page_size: usize,
    tag_list_error: Option<UpstreamError>,
    calls: Vec<String>,
    lookaside: HashMap<Digest, Vec<Bytes>>,
    extension: HashMap<Digest, Vec<Bytes>>,
    supports_signatures: bool,
    /// Subject → referrers; `None`: no referrers API.
    referrers: Option<HashMap<Digest, Vec<Digest>>>,
    /// On the first blob GET, set this task to `canceling`.
    cancel_on_blob: Option<(Store, Uuid)>,
    /// How long each blob GET takes.
    blob_delay: Duration,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    fn blob(&self, bytes: &[u8]) -> serde_json::Value {
        let d = Digest::sha256_of(bytes);
        self.with(|s| s.blobs.insert(d.clone(), Bytes::copy_from_slice(bytes)));
        json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": bytes.len()})
    }

    fn manifest(&self, value: serde_json::Value, media_type: &str) -> Digest {
        let bytes = Bytes::from(serde_json::to_vec(&value).unwrap());
        let d = Digest::sha256_of(&bytes);
        self.with(|s| s.manifests.insert(d.clone(), (bytes, media_type.to_owned())));
        d
    }

    fn tag(&self, tag: &str, d: &Digest) {
        self.with(|s| s.tags.insert(tag.to_owned(), d.clone()));
    }

    /// An OCI image with its own config and the given layers.
    fn image(&self, name: &str, layers: &[&[u8]]) -> Digest {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","name":"{name}"}}"#);
        let mut c = self.blob(config.as_bytes());
        c["mediaType"] = json!(media::OCI_IMAGE_CONFIG);
        let ls: Vec<_> = layers.iter().map(|l| self.blob(l)).collect();
        self.manifest(
            json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": c, "layers": ls}),
            media::OCI_MANIFEST,
        )
    }

    fn tagged_image(&self, tag: &str, layers: &[&[u8]]) -> Digest {
        let d = self.image(tag, layers);
        self.tag(tag, &d);
        d
    }

    fn index(&self, tag: &str, children: &[Digest]) -> Digest {
        let ms: Vec<_> = children
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = self.with(|s| s.manifests[c].0.len());
                json!({"mediaType": media::OCI_MANIFEST, "digest": c, "size": size,
                       "platform": {"os": "linux", "architecture": if i == 0 { "amd64" } else { "arm64" }}})
            })
            .collect();
        let d = self.manifest(
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": ms}),
            media::OCI_INDEX,
        );
        self.tag(tag, &d);
        d
    }

    /// A cosign-style signature artifact tagged `sha256-<hex>.sig`.
    fn cosign(&self, subject: &Digest) -> Digest {
        let payload = format!(r#"{{"critical":{{"image":{{"docker-manifest-digest":"{subject}"}}}}}}"#);
        let mut layer = self.blob(payload.as_bytes());
        layer["mediaType"] = json!("application/vnd.dev.cosign.simplesigning.v1+json");
        let mut c = self.blob(format!(r#"{{"rootfs":"{subject}"}}"#).as_bytes());
        c["mediaType"] = json!(media::OCI_IMAGE_CONFIG);
        let d = self.manifest(
            json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": c, "layers": [layer]}),
            media::OCI_MANIFEST,
        );
        self.tag(&format!("sha256-{}.sig", subject.hex()), &d);
        d
    }
}

fn nf(what: &str) -> UpstreamError {
    UpstreamError::NotFound {
        url: format!("http://fake/v2/repo/{what}"),
    }
}

#[async_trait]
impl Upstream for Fake {
    fn location(&self) -> String {
        "http://fake/v2/repo".into()
    }

    async fn tags_page(&self, next: Option<&str>) -> Result<TagPage, UpstreamError> {
        self.with(|s| {
            s.calls.push(format!("tags {}", next.unwrap_or("")));
            if let Some(e) = &s.tag_list_error {
                return Err(e.clone());
            }
            let start: usize = next.and_then(|n| n.parse().ok()).unwrap_or(0);
            let all: Vec<String> = s.tags.keys().cloned().collect();
            let size = if s.page_size == 0 { usize::MAX } else { s.page_size };
            let end = start.saturating_add(size).min(all.len());
            Ok(TagPage {
                tags: all[start..end].to_vec(),
                next: (end < all.len()).then(|| end.to_string()),
            })
        })
    }

    async fn head_manifest(&self, reference: &str) -> Result<ManifestHead, UpstreamError> {
        self.with(|s| {
            s.calls.push(format!("head {reference}"));
            let d = match Digest::parse(reference) {
                Ok(d) => d,
                Err(_) => s.tags.get(reference).cloned().ok_or_else(|| nf(reference))?,
            };
            let (_, mt) = s.manifests.get(&d).ok_or_else(|| nf(reference))?;
            Ok(ManifestHead {
                media_type: Some(mt.clone()),
                digest: Some(d),
            })
        })
    }

    async fn get_manifest(&self, reference: &str) -> Result<UpstreamManifest, UpstreamError> {
        self.with(|s| {
            s.calls.push(format!("get {reference}"));
            let d = match Digest::parse(reference) {
                Ok(d) => d,
                Err(_) => s.tags.get(reference).cloned().ok_or_else(|| nf(reference))?,
            };
            let (bytes, mt) = s.manifests.get(&d).ok_or_else(|| nf(reference))?;
            Ok(UpstreamManifest {
                bytes: bytes.clone(),
                media_type: Some(mt.clone()),
                digest_header: Some(d),
            })
        })
    }

    async fn get_blob(&self, digest: &Digest) -> Result<UpstreamBlob, UpstreamError> {
        let delay = self.with(|s| s.blob_delay);
        tokio::time::sleep(delay).await;
        let cancel = self.with(|s| s.cancel_on_blob.take());
        if let Some((store, task)) = cancel {
            store
                .update_task::<StoreError>(task, |t| {
                    t.state = TaskState::Canceling;
                    Ok(())
                })
                .await
                .unwrap();
        }
        self.with(|s| {
            s.calls.push(format!("blob {digest}"));
            let mut b = s.blobs.get(digest).cloned().ok_or_else(|| nf(digest.as_str()))?;
            if s.corrupt.contains(digest) {
                b = Bytes::from(format!("not {digest}"));
            }
            let (a, c) = b.split_at(b.len() / 2);
            let chunks = vec![Ok(Bytes::copy_from_slice(a)), Ok(Bytes::copy_from_slice(c))];
            Ok(UpstreamBlob {
                size: Some(b.len() as u64),
                body: Box::pin(futures::stream::iter(chunks)),
            })
        })
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, UpstreamError> {
        self.with(|s| {
            s.calls.push(format!("referrers {digest}"));
            let Some(map) = &s.referrers else { return Ok(None) };
            let ms: Vec<_> = map
                .get(digest)
                .into_iter()
                .flatten()
                .map(|d| json!({"mediaType": media::OCI_MANIFEST, "digest": d, "size": s.manifests[d].0.len()}))
                .collect();
            Ok(Some(Bytes::from(
                serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": ms}))
                    .unwrap(),
            )))
        })
    }

    async fn supports_signatures(&self) -> Result<bool, UpstreamError> {
        Ok(self.with(|s| s.supports_signatures))
    }

    async fn extension_signatures(&self, digest: &Digest) -> Result<Vec<AtomicSignature>, UpstreamError> {
        Ok(self.with(|s| {
            s.extension
                .get(digest)
                .into_iter()
                .flatten()
                .map(|b| AtomicSignature {
                    name: None,
                    content: b.clone(),
                })
                .collect()
        }))
    }

    async fn lookaside_signature(&self, _: &str, digest: &Digest, n: u32) -> Result<Option<Bytes>, UpstreamError> {
        Ok(self.with(|s| {
            s.calls.push(format!("lookaside {digest} {n}"));
            s.lookaside.get(digest).and_then(|v| v.get(n as usize - 1)).cloned()
        }))
    }
}

struct Factory(Fake);

impl UpstreamFactory for Factory {
    fn client(&self, _: &UpstreamConfig) -> Result<Arc<dyn Upstream>, UpstreamError> {
        Ok(Arc::new(self.0.clone()))
    }
}

// ---- the harness -----------------------------------------------------------------------

struct H {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    svc: Arc<SyncService>,
    fake: Fake,
    repo: Repository,
    remote: Remote,
}

fn remote(includes: &[&str], excludes: &[&str]) -> Remote {
    let v = |xs: &[&str]| (!xs.is_empty()).then(|| xs.iter().map(|s| s.to_string()).collect());
    let mut r = Remote::new("r", "http://fake", "repo");
    r.includes = v(includes);
    r.excludes = v(excludes);
    r.download_concurrency = Some(3);
    r.max_retries = Some(1);
    r
}

impl H {
    async fn new() -> Self {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
        let fake = Fake::default();
        let svc = Arc::new(
            SyncService::new(store.clone(), blobs.clone(), Arc::new(Factory(fake.clone()))).with_settings(
                SyncSettings {
                    poll: Duration::from_millis(10),
                    ..Default::default()
                },
            ),
        );
        let repo = Repository::new("mirror", RepositoryKind::Mirror);
        store.create_repository(&repo).await.unwrap();
        let remote = remote(&[], &[]);
        store.create_remote(&remote).await.unwrap();
        H {
            store,
            blobs,
            svc,
            fake,
            repo,
            remote,
        }
    }

    async fn set_remote(&mut self, f: impl Fn(&mut Remote)) {
        self.remote = self
            .store
            .update_remote::<StoreError>(self.remote.id, |r| {
                f(r);
                Ok(())
            })
            .await
            .unwrap();
    }

    async fn job(&self, mirror: bool, signed_only: bool) -> SyncJob {
        let t = Task::new(SYNC_TASK_NAME);
        self.store.create_task(&t).await.unwrap();
        SyncJob {
            task: t.id,
            repository: self.repo.id,
            remote: self.remote.id,
            mirror,
            signed_only,
            deadline_ms: None,
        }
    }

    /// Runs a sync to its end and returns the task.
    async fn sync(&self, mirror: bool) -> Task {
        let job = self.job(mirror, false).await;
        self.run(&job).await
    }

    async fn run(&self, job: &SyncJob) -> Task {
        let _ = self.svc.run(job).await;
        self.store.task(job.task).await.unwrap().unwrap()
    }

    async fn latest(&self) -> u64 {
        self.store
            .repository(self.repo.id)
            .await
            .unwrap()
            .unwrap()
            .latest_version
    }

    async fn summary(&self) -> crate::domain::ContentSummary {
        let r = self.store.repository(self.repo.id).await.unwrap().unwrap();
        self.store
            .version(&r, r.latest_version)
            .await
            .unwrap()
            .unwrap()
            .content_summary
    }

    async fn tags(&self) -> Vec<String> {
        let v = self.latest().await;
        self.store
            .tags(self.repo.id, v, None, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.to_string())
            .collect()
    }

    async fn has(&self, key: ContentKey) -> bool {
        self.store
            .contains(self.repo.id, self.latest().await, &key)
            .await
            .unwrap()
    }
}

fn counts(c: &crate::domain::ContentTypeCounts) -> (u64, u64, u64, u64) {
    let g = |t| c.get(&t).copied().unwrap_or(0);
    (
        g(ContentType::Blob),
        g(ContentType::Manifest),
        g(ContentType::Tag),
        g(ContentType::Signature),
    )
}

fn report<'a>(t: &'a Task, code: &str) -> Option<&'a ProgressReport> {
    t.progress_reports.iter().find(|r| r.code == code)
}

// ---- tests ------------------------------------------------------------------------------

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
    for d in h
        .store
        .content(h.repo.id, 1, ContentType::Blob, None, 100)
        .await
        .unwrap()
    {
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
        h.store.tag(h.repo.id, v, &Tag::parse("latest").unwrap()).await.unwrap(),
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
async fn cancel_mid_sync_leaves_no_version() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1", b"2", b"3"]);
    let job = h.job(false, false).await;
    h.fake.with(|s| s.cancel_on_blob = Some((h.store.clone(), job.task)));
    let t = h.run(&job).await;
    assert_eq!(t.state, TaskState::Canceled);
    assert!(t.finished.is_some());
    assert_eq!(h.latest().await, 0);
    let r = h.store.repository(h.repo.id).await.unwrap().unwrap();
    assert!(r.lease.is_none(), "the lease is released");
    // the next sync works
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(h.latest().await, 1);
}

#[tokio::test]
async fn a_redelivered_job_makes_one_version() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1"]);
    let job = h.job(false, false).await;
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    // the same message again: the task is final, nothing happens
    h.fake.tagged_image("b", &[b"2"]);
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    assert_eq!(h.latest().await, 1);
    // a crash after the commit, before the task was updated: the repository remembers
    h.store
        .update_task::<StoreError>(job.task, |t| {
            t.state = TaskState::Running;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    assert_eq!(h.latest().await, 1);
    assert_eq!(h.tags().await, vec!["a"]);
}

#[tokio::test]
async fn a_failure_names_what_and_where() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1"]);
    h.fake.with(|s| {
        s.tag_list_error = Some(UpstreamError::Status {
            url: "http://fake/v2/repo/tags/list".into(),
            code: 500,
            detail: "(retried 1 times)".into(),
        })
    });
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert!(e.contains("tag list"), "{e}");
    assert!(e.contains("http://fake/v2/repo/tags/list"), "{e}");
    assert!(e.contains("500"), "{e}");
    assert_eq!(h.latest().await, 0);
    // the next sync works
    h.fake.with(|s| s.tag_list_error = None);
    assert_eq!(h.sync(false).await.state, TaskState::Completed);
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_stores_nothing() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"good", b"evil"]);
    let evil = Digest::sha256_of(b"evil");
    h.fake.with(|s| s.corrupt.insert(evil.clone()));
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert!(e.contains(evil.as_str()) && e.contains("nothing was stored"), "{e}");
    assert!(h.blobs.stat(&evil).await.unwrap().is_none());
    assert!(h.store.blob(&evil).await.unwrap().is_none());
    assert_eq!(h.latest().await, 0);
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

#[tokio::test]
async fn two_syncs_of_one_repository_never_interleave() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1"]);
    // another writer holds the repository
    let w = h
        .store
        .begin_write(h.repo.id, "someone", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    let job = h.job(false, false).await;
    let svc = h.svc.clone();
    let j = job.clone();
    let running = tokio::spawn(async move { svc.run(&j).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = h.store.task(job.task).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running, "the sync waits for the lease");
    assert_eq!(h.latest().await, 0);
    w.abort().await.unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(
        h.store.task(job.task).await.unwrap().unwrap().state,
        TaskState::Completed
    );
    assert_eq!(h.latest().await, 1);
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

#[tokio::test]
async fn pulls_of_lazy_blobs_fetch_verify_and_store_them() {
    use crate::domain::RepoName;
    use crate::services::{BlobBody, Registry, RegistryConfig, RegistryError};
    use crate::store::Distribution;

    for (policy, keep) in [(Policy::OnDemand, true), (Policy::Streamed, false)] {
        let mut h = H::new().await;
        h.fake.tagged_image("a", &[b"good-layer", b"bad-layer"]);
        h.set_remote(|r| r.policy = policy).await;
        assert_eq!(h.sync(false).await.state, TaskState::Completed);
        let (good, bad) = (Digest::sha256_of(b"good-layer"), Digest::sha256_of(b"bad-layer"));
        h.fake.with(|s| s.corrupt.insert(bad.clone()));
        h.store
            .create_distribution(&Distribution {
                id: Uuid::new_v4(),
                name: "m".into(),
                base_path: RepoName::parse("m").unwrap(),
                repository: Some(h.repo.id),
                version: None,
                private: false,
                description: None,
                pulp_labels: Default::default(),
                created: Utc::now(),
                updated: Utc::now(),
            })
            .await
            .unwrap();
        let name = RepoName::parse("m").unwrap();
        let plain = Registry::new(h.store.clone(), h.blobs.clone(), RegistryConfig::default());
        assert!(matches!(
            plain.blob(&name, &good, |_| Ok(None)).await,
            Err(RegistryError::BlobUnknown(_))
        ));
        let reg = Registry::new(h.store.clone(), h.blobs.clone(), RegistryConfig::default())
            .with_upstreams(Some(Arc::new(Factory(h.fake.clone()))));
        assert_eq!(reg.blob_size(&name, &good).await.unwrap(), 10);
        let pull = |d: Digest| {
            let reg = &reg;
            let name = &name;
            async move {
                let BlobBody::Stream(r) = reg.blob(name, &d, |_| Ok(None)).await.unwrap() else {
                    panic!("a stream")
                };
                assert_eq!(r.range, None);
                r.body.collect::<Vec<_>>().await
            }
        };
        let chunks = pull(good.clone()).await;
        assert!(chunks.iter().all(|c| c.is_ok()));
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"good-layer");
        assert_eq!(h.blobs.stat(&good).await.unwrap().is_some(), keep, "{policy:?}");
        assert_eq!(h.store.blob(&good).await.unwrap().is_some(), keep, "{policy:?}");
        // bytes that do not match: the client sees an error, never a whole blob; nothing stored
        let chunks = pull(bad.clone()).await;
        assert!(chunks.last().unwrap().is_err(), "{policy:?}");
        assert!(h.blobs.stat(&bad).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_long_sync_keeps_renewing_its_lease() {
    let mut h = H::new().await;
    h.svc = Arc::new(
        SyncService::new(h.store.clone(), h.blobs.clone(), Arc::new(Factory(h.fake.clone()))).with_settings(
            SyncSettings {
                lease_ttl: Duration::from_millis(300),
                renew_every: Duration::from_millis(50),
                poll: Duration::from_millis(10),
                ..Default::default()
            },
        ),
    );
    h.fake.tagged_image("a", &[b"slow"]);
    h.fake.with(|s| s.blob_delay = Duration::from_millis(1200));
    let job = h.job(false, false).await;
    let svc = h.svc.clone();
    let j = job.clone();
    let running = tokio::spawn(async move { svc.run(&j).await });
    // well past the lease's lifetime, the sync still holds the repository
    tokio::time::sleep(Duration::from_millis(800)).await;
    let other = h
        .store
        .begin_write(h.repo.id, "other", Duration::from_secs(1), Duration::ZERO)
        .await;
    assert!(matches!(other, Err(WriteError::Busy)), "the lease was renewed");
    running.await.unwrap().unwrap();
    assert_eq!(
        h.store.task(job.task).await.unwrap().unwrap().state,
        TaskState::Completed
    );
    assert_eq!(h.latest().await, 1);
}

#[tokio::test]
async fn a_run_that_reaches_its_deadline_continues_in_a_follow_up_without_refetching() {
    let h = H::new().await;
    for i in 0..6u8 {
        h.fake
            .tagged_image(&format!("t{i}"), &[&[i; 3000][..], &[i + 100; 2000][..]]);
    }
    let mut job = h.job(false, false).await;
    // a deadline that has passed: the run stops at its first check, commits nothing, and asks
    // to continue; the task stays running
    job.deadline_ms = Some(Utc::now().timestamp_millis() - 1);
    let r = h.svc.run(&job).await;
    assert!(matches!(r, Err(JobError::Continue)), "{r:?}");
    let t = h.store.task(job.task).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(h.latest().await, 0, "nothing committed");
    // the follow-up run finishes the work: one version, no blob fetched twice
    job.deadline_ms = None;
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    assert_eq!(h.latest().await, 1);
    let calls = h.fake.calls();
    let mut blobs: Vec<&String> = calls.iter().filter(|c| c.starts_with("blob ")).collect();
    let n = blobs.len();
    blobs.sort();
    blobs.dedup();
    assert_eq!(blobs.len(), n, "no blob was downloaded twice");
}

/// A run whose deadline comes while blobs download keeps its plan as a checkpoint; the
/// follow-up starts from it: no tag list, no manifest request, no stored blob fetched again.
#[tokio::test]
async fn a_follow_up_resumes_from_the_checkpoint_of_a_run_stopped_mid_download() {
    let h = H::new().await;
    for i in 0..6u8 {
        h.fake
            .tagged_image(&format!("t{i}"), &[&[i; 3000][..], &[i + 100; 2000][..]]);
    }
    h.fake.with(|s| s.blob_delay = Duration::from_millis(150));
    let mut job = h.job(false, false).await;
    job.deadline_ms = Some(Utc::now().timestamp_millis() + 400);
    let r = h.svc.run(&job).await;
    assert!(matches!(r, Err(JobError::Continue)), "{r:?}");
    assert_eq!(h.latest().await, 0, "nothing committed");
    let first = h.fake.calls();
    let fetched: Vec<String> = first.iter().filter(|c| c.starts_with("blob ")).cloned().collect();
    assert!(
        !fetched.is_empty(),
        "some blobs were downloaded before the deadline: {first:?}"
    );
    assert!(fetched.len() < 18, "the deadline stopped the downloads: {first:?}");
    assert!(h.store.checkpoint(job.task).await.unwrap().is_some());
    let t = h.store.task(job.task).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert!(t
        .progress_reports
        .iter()
        .any(|r| r.code == MANIFESTS.1 && r.state == "completed"));

    job.deadline_ms = None;
    h.fake.with(|s| s.blob_delay = Duration::ZERO);
    let t = h.run(&job).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let second: Vec<String> = h.fake.calls()[first.len()..].to_vec();
    assert!(
        second.iter().all(|c| c.starts_with("blob ")),
        "the follow-up only downloads blobs: {second:?}"
    );
    for c in &fetched {
        assert!(!second.contains(c), "{c} was downloaded again");
    }
    assert_eq!(fetched.len() + second.len(), 18, "every blob, once");
    assert_eq!(h.latest().await, 1);
    let tags = h.tags().await;
    assert_eq!(tags.len(), 6, "{tags:?}");
    assert!(
        h.store.checkpoint(job.task).await.unwrap().is_none(),
        "the checkpoint is gone"
    );
    // the task's report covers both runs
    let listed = t.progress_reports.iter().find(|r| r.code == TAG_LIST.1).unwrap();
    assert_eq!(listed.state, "completed");
    let artifacts = t.progress_reports.iter().find(|r| r.code == ARTIFACTS.1).unwrap();
    assert_eq!(artifacts.state, "completed");
    assert_eq!((artifacts.done, artifacts.total), (18, Some(18)), "{artifacts:?}");
}

/// A sync that reuses a stored blob no repository holds touches it, which protects it from
/// an orphan cleanup until the sync's version references it; what the base version already
/// holds is not touched again.
#[tokio::test]
async fn a_sync_touches_the_stored_content_it_reuses() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"an old orphaned layer"]);
    let d = Digest::sha256_of(b"an old orphaned layer");
    let key = ContentKey::Blob(d.clone());
    h.blobs
        .put(
            &d,
            Box::pin(futures::stream::once(async {
                Ok(Bytes::from_static(b"an old orphaned layer"))
            })),
        )
        .await
        .unwrap();
    h.store
        .put_blob(&BlobRecord {
            digest: d.clone(),
            size: 21,
            created: Utc::now() - chrono::Duration::days(30),
        })
        .await
        .unwrap();
    let month_ago = crate::ports::unix_now() - 30 * 86_400;
    let stored_at = || async {
        let row = h.store.table().get("stored", &key.encode()).await.unwrap().unwrap();
        serde_json::from_slice::<serde_json::Value>(&row.value).unwrap()["at"]
            .as_u64()
            .unwrap()
    };
    let old = serde_json::to_vec(&serde_json::json!({ "at": month_ago })).unwrap();
    h.store
        .table()
        .put("stored", &key.encode(), old.clone(), crate::ports::Cond::Any)
        .await
        .unwrap();
    assert_eq!(h.sync(false).await.state, TaskState::Completed);
    assert!(stored_at().await > month_ago + 86_400, "the reused blob was touched");
    assert!(
        !h.fake.calls().iter().any(|c| c == &format!("blob {d}")),
        "and not downloaded"
    );
    // once version 1 holds it, a re-sync does not touch it again
    h.store
        .table()
        .put("stored", &key.encode(), old, crate::ports::Cond::Any)
        .await
        .unwrap();
    let _ = h.sync(false).await;
    assert_eq!(stored_at().await, month_ago);
}

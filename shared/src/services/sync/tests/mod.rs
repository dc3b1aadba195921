//! Sync service tests on the memory adapters and an in-memory fake upstream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::apply::ARTIFACTS;
use super::plan::{cosign_subject, MANIFESTS, TAG_LIST};
use super::*;
use crate::adapters::memory::{MemoryBlobStore, MemoryTable};
use crate::domain::{media, ContentKey, ContentType, Digest, Tag};
use crate::ports::{
    AtomicSignature, JobError, LeaseTimings, ManifestHead, StoreError, SyncJob, TagPage, Upstream, UpstreamBlob,
    UpstreamConfig, UpstreamError, UpstreamFactory, UpstreamManifest,
};
use crate::services::SYNC_TASK_NAME;
use crate::store::{
    BlobRecord, Policy, ProgressReport, Remote, Repository, RepositoryKind, SignatureType, Store, Task, TaskState,
};

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
    let mut r = Remote::new("r", "http://fake", crate::domain::RepoName::parse("repo").unwrap());
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
        }
    }

    /// Runs a sync to its end and returns the task.
    async fn sync(&self, mirror: bool) -> Task {
        let job = self.job(mirror, false).await;
        self.run(&job).await
    }

    async fn run(&self, job: &SyncJob) -> Task {
        let _ = self.svc.run(job, None).await;
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
        let r = self.store.repository(self.repo.id).await.unwrap().unwrap();
        self.store
            .tags(&r, v, None, usize::MAX)
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

mod lifecycle;
mod selection;

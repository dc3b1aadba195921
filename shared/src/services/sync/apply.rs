//! Sync steps 5 and 6: the plan's blobs (downloaded with the `immediate` policy, recorded for
//! a first pull otherwise), then the new version's content, additive or mirror.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; part of
//! the sync service.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;

use super::plan::Plan;
use super::{failed, Result, Run, SyncError};
use crate::domain::{ContentKey, ContentType, Digest, ParsedManifest};
use crate::ports::{ByteStream, StoreError};
use crate::store::{BlobRecord, LazyBlob, Policy, VersionWriter};

pub(super) const ARTIFACTS: (&str, &str) = ("Downloading Artifacts", "sync.downloading.artifacts");
pub(super) const UNASSOCIATING: (&str, &str) = ("Un-Associating Content", "unassociating.content");
pub(super) const ASSOCIATING: (&str, &str) = ("Associating Content", "associating.content");
pub(super) fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}
impl Run<'_> {
    pub(super) async fn apply(&self, w: &mut VersionWriter, plan: Plan) -> Result<()> {
        let remote = &self.remote;
        let Plan { images, signatures, .. } = plan;
        let all_manifests: BTreeSet<Digest> = images.iter().flat_map(|i| i.manifests.iter().cloned()).collect();
        let mut parsed: Vec<(Digest, ParsedManifest)> = Vec::with_capacity(all_manifests.len());
        for d in &all_manifests {
            // seen in this run, or stored by the run that made a resumed plan
            match self.known_manifest(d).await? {
                Some(p) => parsed.push((d.clone(), p)),
                None => {
                    return Err(SyncError::Failed(format!(
                        "manifest {d} of the sync's plan is not stored"
                    )))
                }
            }
        }
        let immediate = remote.policy == Policy::Immediate;
        let mut blobs_wanted: BTreeMap<Digest, u64> = BTreeMap::new();
        let mut download: BTreeSet<Digest> = BTreeSet::new();
        for (_, p) in &parsed {
            if let Some(c) = &p.config {
                blobs_wanted.insert(c.digest.clone(), c.size);
                download.insert(c.digest.clone());
            }
            for l in &p.layers {
                if is_foreign(&l.media_type) {
                    continue;
                }
                blobs_wanted.insert(l.digest.clone(), l.size);
                if immediate {
                    download.insert(l.digest.clone());
                }
            }
        }
        let mut missing: Vec<(Digest, u64)> = Vec::new();
        for d in &download {
            self.housekeeping(w).await?;
            if let Some(size) = self.svc.blobs.stat(d).await? {
                if self.store().blob(d).await?.is_none() {
                    self.record_blob(d, size).await?;
                } else {
                    self.reused(ContentKey::Blob(d.clone())).await?;
                }
            } else {
                missing.push((d.clone(), blobs_wanted.get(d).copied().unwrap_or(0)));
            }
        }
        // a resumed run counts on from what its earlier run downloaded
        let remaining = missing.len() as u64;
        self.report(ARTIFACTS, |r| {
            r.state = "running".into();
            r.total = Some(r.done + remaining);
        });
        {
            let this = self;
            let stream = futures::stream::iter(missing)
                .map(move |(d, size)| async move { this.download_blob(&d, size).await })
                .buffer_unordered(self.concurrency);
            self.drive(w, stream, |()| {
                self.advance(ARTIFACTS, 1);
                Ok(())
            })
            .await?;
        }
        self.complete(ARTIFACTS);
        if !immediate {
            for (d, size) in &blobs_wanted {
                self.housekeeping(w).await?;
                if download.contains(d) {
                    continue;
                }
                if self.svc.blobs.stat(d).await?.is_none() {
                    self.store()
                        .put_lazy_blob(
                            self.job.repository,
                            d,
                            &LazyBlob {
                                remote: remote.id,
                                size: *size,
                            },
                        )
                        .await?;
                }
            }
        }

        // 7. the new version's content
        let mut desired: BTreeSet<ContentKey> = BTreeSet::new();
        for i in &images {
            if let Some(t) = &i.tag {
                desired.insert(ContentKey::Tag {
                    name: t.clone(),
                    manifest: i.top.clone(),
                });
            }
        }
        desired.extend(all_manifests.iter().cloned().map(ContentKey::Manifest));
        desired.extend(blobs_wanted.keys().cloned().map(ContentKey::Blob));
        for (_, sigs) in &signatures {
            for s in sigs {
                self.housekeeping(w).await?;
                self.store().put_signature(s).await?;
                desired.insert(ContentKey::Signature(s.digest.clone()));
            }
        }
        self.associate(w, desired).await
    }
    pub(super) fn store_failure(&self, what: &str, e: StoreError) -> SyncError {
        match e {
            StoreError::DigestMismatch { expected, actual } => SyncError::Failed(format!(
                "{what}: the bytes hash to {actual}, not {expected}; nothing was stored"
            )),
            StoreError::Body(src) if self.canceled.load(Ordering::Relaxed) => {
                let _ = src;
                SyncError::Canceled
            }
            StoreError::Body(src) => SyncError::Failed(format!("{what}: {src}")),
            e => SyncError::Store(e),
        }
    }

    /// Referrers of `subjects` through the OCI 1.1 API, when the upstream has it (the first
    pub(super) async fn record_blob(&self, d: &Digest, size: u64) -> Result<()> {
        self.store()
            .put_blob(&BlobRecord {
                digest: d.clone(),
                size,
                created: Utc::now(),
            })
            .await?;
        Ok(())
    }

    /// Streams one blob from upstream into the blob store (verified there), retrying a
    /// broken transfer.
    pub(super) async fn download_blob(&self, d: &Digest, size: u64) -> Result<()> {
        let at = format!("blob {d} from {}/blobs/{d}", self.up.location());
        let mut attempt = 0u64;
        loop {
            if self.canceled.load(Ordering::Relaxed) {
                return Err(SyncError::Canceled);
            }
            let blob = self
                .up
                .get_blob(d)
                .await
                .map_err(|e| failed(format!("downloading {at}"), e))?;
            let body = cancelable(blob.body, self.canceled.clone());
            match self.svc.blobs.put(d, body).await {
                Ok(n) => {
                    if n != size && size != 0 {
                        tracing::debug!(digest = %d, stated = size, actual = n, "blob size differs from the manifest");
                    }
                    return self.record_blob(d, n).await;
                }
                Err(StoreError::Body(e)) if !self.canceled.load(Ordering::Relaxed) && attempt < self.retries => {
                    tracing::debug!(digest = %d, error = %e, attempt, "blob transfer broke; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                }
                Err(e) => return Err(self.store_failure(&format!("downloading {at}"), e)),
            }
        }
    }

    /// Builds the new version from `desired`: additive or mirror.
    pub(super) async fn associate(&self, w: &mut VersionWriter, desired: BTreeSet<ContentKey>) -> Result<()> {
        let repo = w.repository().clone();
        let base = w.base();
        let mut removals: Vec<ContentKey> = Vec::new();
        if self.job.mirror {
            for ty in ContentType::ALL {
                for k in self.store().content(&repo, base, ty, None, usize::MAX).await? {
                    if !desired.contains(&k) {
                        removals.push(k);
                    }
                }
            }
        } else {
            for k in &desired {
                if let ContentKey::Tag { name, manifest } = k {
                    if let Some(old) = self.store().tag(&repo, base, name).await? {
                        if &old != manifest {
                            removals.push(ContentKey::Tag {
                                name: name.clone(),
                                manifest: old,
                            });
                        }
                    }
                }
            }
        }
        if !removals.is_empty() {
            self.start(UNASSOCIATING, None);
            for k in removals {
                self.housekeeping(w).await?;
                if w.remove(k).await? {
                    self.advance(UNASSOCIATING, 1);
                }
            }
            self.complete(UNASSOCIATING);
        }
        self.start(ASSOCIATING, None);
        for k in desired {
            self.housekeeping(w).await?;
            if w.add(k).await? {
                self.advance(ASSOCIATING, 1);
            }
        }
        self.complete(ASSOCIATING);
        Ok(())
    }
}
/// Ends `body` with an error as soon as `canceled` is set.
pub(super) fn cancelable(body: ByteStream, canceled: Arc<AtomicBool>) -> ByteStream {
    Box::pin(body.map(move |chunk| {
        if canceled.load(Ordering::Relaxed) {
            Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "sync canceled"))
        } else {
            chunk
        }
    }))
}

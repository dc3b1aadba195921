//! Blobs that `on_demand` and `streamed` syncs left upstream: fetched when pulled, their digest
//! verified before the last byte reaches the client, and (for `on_demand`) stored on the way.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;

use super::{BlobBody, Registry, RegistryError, Result};
use crate::domain::Digest;
use crate::ports::{BlobReader, BlobStore, ByteStream, CacheBlobJob, Job, JobKind, StoreError, UpstreamError};
use crate::store::{BlobRecord, LazyBlob, Policy, Remote, Store};
use uuid::Uuid;

impl Registry {
    /// Streams a blob from the upstream a sync left it at, verifying its digest on the way:
    /// the last chunk reaches the client only after the bytes verified (and, for
    /// `on_demand`, were stored), so a bad or broken transfer never looks complete.
    pub(super) async fn fetch_lazy(&self, repo: Uuid, digest: &Digest, lazy: LazyBlob) -> Result<BlobBody> {
        let unknown = || RegistryError::BlobUnknown(digest.clone());
        let Some(factory) = &self.upstreams else {
            return Err(unknown());
        };
        let Some(remote) = self.store.remote(lazy.remote).await? else {
            tracing::warn!(%digest, remote = %lazy.remote, "the remote of an on-demand blob is gone");
            return Err(unknown());
        };
        let keep = remote.policy != Policy::Streamed;
        if !self.cfg.relay_blobs {
            return self.fetch_elsewhere(repo, digest, &remote, keep).await;
        }
        // one fetch per blob at a time: the others wait for it and read what it stored
        let turn = if keep {
            let turn = self.flights.enter(format!("blob {digest}")).await;
            if self.blobs.stat(digest).await?.is_some() {
                drop(turn);
                return self.stored_blob(digest).await;
            }
            Some(turn)
        } else {
            None
        };
        let up = factory
            .client(&remote.upstream_config())
            .map_err(|e| RegistryError::Internal(Box::new(e)))?;
        let blob = match up.get_blob(digest).await {
            Ok(b) => b,
            Err(UpstreamError::NotFound { .. }) => return Err(unknown()),
            Err(e @ UpstreamError::TooManyRequests { .. }) => {
                return Err(RegistryError::UpstreamThrottled(e.to_string()));
            }
            Err(e) => {
                tracing::warn!(%digest, remote = %remote.name, error = %e, "fetching an on-demand blob failed");
                return Err(RegistryError::UpstreamFailed(e.to_string()));
            }
        };
        let body = tee_verified(
            digest.clone(),
            blob.body,
            keep.then(|| (self.store.clone(), self.blobs.clone())),
            turn,
        );
        Ok(BlobBody::Stream(BlobReader {
            size: lazy.size,
            range: None,
            body,
        }))
    }
}

impl Registry {
    /// A blob miss where its bytes cannot pass through this process (AWS Lambda): the copy
    /// into the blob store is queued for the sync worker (once, however many misses), and the
    /// client is sent to the upstream's own redirect target when it has one (a CDN or object
    /// store), else to the stored blob once the copy is done, else asked to come back.
    async fn fetch_elsewhere(&self, repo: Uuid, digest: &Digest, remote: &Remote, keep: bool) -> Result<BlobBody> {
        let up = self.upstream_of(remote)?;
        let elsewhere = match up.blob_elsewhere(digest).await {
            Ok(e) => e,
            Err(UpstreamError::NotFound { .. }) => return Err(RegistryError::BlobUnknown(digest.clone())),
            Err(e @ UpstreamError::TooManyRequests { .. }) => {
                return Err(RegistryError::UpstreamThrottled(e.to_string()))
            }
            Err(e) => {
                tracing::warn!(%digest, remote = %remote.name, error = %e, "asking upstream for a blob failed");
                return Err(RegistryError::UpstreamFailed(e.to_string()));
            }
        };
        if keep {
            self.queue_copy(repo, digest).await?;
        }
        if let Some(url) = elsewhere {
            return Ok(BlobBody::Redirect(url));
        }
        if !keep {
            return Err(RegistryError::Unsupported(format!(
                "{digest} is streamed from an upstream that serves blobs itself, which this runtime cannot pass on"
            )));
        }
        let until = tokio::time::Instant::now() + self.cfg.copy_wait;
        loop {
            if self.blobs.stat(digest).await?.is_some() {
                return self.stored_blob(digest).await;
            }
            if tokio::time::Instant::now() >= until {
                return Err(RegistryError::NotYet(digest.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Queues the copy of `digest` into the blob store unless one is underway.
    async fn queue_copy(&self, repo: Uuid, digest: &Digest) -> Result<()> {
        let Some(jobs) = &self.jobs else {
            return Err(RegistryError::Unsupported(
                "this runtime cannot copy blobs from upstream".into(),
            ));
        };
        if !self.store.claim_blob_copy(digest, COPY_CLAIM).await? {
            return Ok(());
        }
        let job = Job::new(
            format!("cache-blob-{}", digest.hex()),
            JobKind::CacheBlob(CacheBlobJob {
                repository: repo,
                digest: digest.clone(),
            }),
        );
        if let Err(e) = jobs.enqueue(job).await {
            let _ = self.store.release_blob_copy(digest).await;
            return Err(e.into());
        }
        tracing::info!(%digest, "queued the copy of a blob from upstream");
        Ok(())
    }

    /// Copies a blob repository `repo` holds on demand from its upstream into the blob store
    /// (the cache-blob job), verifying its digest. Nothing to do when it is stored already.
    pub async fn copy_blob(&self, repo: Uuid, digest: &Digest) -> Result<()> {
        let outcome = self.copy_blob_once(repo, digest).await;
        self.store.release_blob_copy(digest).await?;
        outcome
    }

    async fn copy_blob_once(&self, repo: Uuid, digest: &Digest) -> Result<()> {
        if self.blobs.stat(digest).await?.is_some() {
            return Ok(());
        }
        let Some(lazy) = self.store.lazy_blob(repo, digest).await? else {
            tracing::warn!(%digest, %repo, "no on-demand record of the blob to copy");
            return Ok(());
        };
        let Some(remote) = self.store.remote(lazy.remote).await? else {
            tracing::warn!(%digest, remote = %lazy.remote, "the remote of an on-demand blob is gone");
            return Ok(());
        };
        let up = self.upstream_of(&remote)?;
        let blob = up.get_blob(digest).await.map_err(|e| match e {
            UpstreamError::NotFound { .. } => RegistryError::BlobUnknown(digest.clone()),
            e => RegistryError::UpstreamFailed(e.to_string()),
        })?;
        let size = self.blobs.put(digest, blob.body).await?;
        self.store
            .put_blob(&BlobRecord {
                digest: digest.clone(),
                size,
                created: Utc::now(),
            })
            .await?;
        tracing::info!(%digest, size, "copied a blob from upstream");
        Ok(())
    }
}

/// How long a blob being stored waits for a client that stops reading before going on without it.
const CLIENT_STALL: Duration = Duration::from_secs(10);

/// How long a claim to copy a blob holds before another miss may take it over.
const COPY_CLAIM: Duration = Duration::from_secs(15 * 60);

/// Passes `body` on, hashing it; holds back the last chunk until the digest verified (and,
/// with `keep`, the blob store accepted the same bytes), else ends with an error. The
/// transfer runs to its end even when the client goes away, so a kept blob is stored.
///
/// `turn` (the blob's single-flight guard) is held until the blob is stored or the transfer
/// failed, so those waiting for it find it stored.
fn tee_verified(
    digest: Digest,
    mut body: ByteStream,
    keep: Option<(Store, Arc<dyn BlobStore>)>,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
) -> ByteStream {
    use futures::StreamExt;
    type Chunk = std::result::Result<Bytes, std::io::Error>;
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let (store_tx, stored) = match keep {
        Some((store, blobs)) => {
            let (stx, srx) = tokio::sync::mpsc::channel::<Chunk>(8);
            let d = digest.clone();
            let handle = tokio::spawn(async move {
                let stream: ByteStream = Box::pin(futures::stream::unfold(srx, |mut rx| async move {
                    rx.recv().await.map(|c| (c, rx))
                }));
                let size = blobs.put(&d, stream).await?;
                store
                    .put_blob(&BlobRecord {
                        digest: d,
                        size,
                        created: Utc::now(),
                    })
                    .await?;
                Ok::<u64, StoreError>(size)
            });
            (Some(stx), Some(handle))
        }
        None => (None, None),
    };
    tokio::spawn(async move {
        let _turn = turn;
        let mut hasher = crate::domain::Hasher::new(digest.algorithm());
        let mut held: Option<Bytes> = None;
        let mut client = true;
        let mut store_tx = store_tx;
        let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(b) => {
                    hasher.update(&b);
                    if let Some(s) = &store_tx {
                        if s.send(Ok(b.clone())).await.is_err() {
                            store_tx = None;
                        }
                    }
                    if let Some(prev) = held.replace(b) {
                        // a client that stops reading is left behind, so it cannot hold up
                        // the copy (and whoever waits for it)
                        let sent = client
                            && match &store_tx {
                                Some(_) => {
                                    matches!(tokio::time::timeout(CLIENT_STALL, tx.send(Ok(prev))).await, Ok(Ok(())))
                                }
                                None => tx.send(Ok(prev)).await.is_ok(),
                            };
                        if client && !sent {
                            client = false;
                            tracing::info!(%digest, "the client stopped reading; storing the blob without it");
                            if store_tx.is_none() {
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    let msg = format!("fetching {digest} from upstream failed: {e}");
                    if let Some(s) = &store_tx {
                        let _ = s.send(Err(bad(msg.clone()))).await;
                    }
                    let _ = tx.send(Err(bad(msg))).await;
                    return;
                }
            }
        }
        drop(store_tx);
        let actual = hasher.finish();
        let mut verdict = if actual == digest {
            Ok(())
        } else {
            Err(format!("upstream sent bytes hashing to {actual}, not {digest}"))
        };
        if let Some(h) = stored {
            match h.await {
                Ok(Ok(_)) => tracing::info!(%digest, "stored an on-demand blob"),
                Ok(Err(e)) => {
                    tracing::warn!(%digest, error = %e, "storing an on-demand blob failed");
                    if verdict.is_ok() {
                        verdict = Err(format!("storing {digest} failed"));
                    }
                }
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "storing an on-demand blob failed");
                    if verdict.is_ok() {
                        verdict = Err(format!("storing {digest} failed"));
                    }
                }
            }
        }
        if !client {
            return;
        }
        match verdict {
            Ok(()) => {
                if let Some(last) = held {
                    let _ = tx.send(Ok(last)).await;
                }
            }
            Err(msg) => {
                tracing::warn!(%digest, "{msg}");
                let _ = tx.send(Err(bad(msg))).await;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }))
}

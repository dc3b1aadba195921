//! Storing content the way every path that brings it in does (push, sync).

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;

use crate::domain::{Digest, ParsedManifest};
use crate::ports::{BlobStore, StoreError};
use crate::store::{ManifestRecord, Store, INLINE_MANIFEST_MAX};

/// Stores a parsed manifest: its bytes into the blob store under `digest` (verified there),
/// then its record, inline when small. A digest mismatch stores nothing.
pub(crate) async fn save_manifest(
    store: &Store,
    blobs: &Arc<dyn BlobStore>,
    digest: &Digest,
    bytes: &Bytes,
    parsed: ParsedManifest,
) -> Result<ManifestRecord, StoreError> {
    let size = blobs
        .put(
            digest,
            Box::pin(futures::stream::once({
                let b = bytes.clone();
                async move { Ok(b) }
            })),
        )
        .await?;
    let inline = (bytes.len() <= INLINE_MANIFEST_MAX)
        .then(|| String::from_utf8(bytes.to_vec()).ok())
        .flatten();
    let rec = ManifestRecord {
        digest: digest.clone(),
        size,
        parsed,
        inline,
        created: Utc::now(),
    };
    store.put_manifest(&rec).await?;
    Ok(rec)
}

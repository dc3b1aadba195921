use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use super::StoreError;
use crate::domain::Digest;

/// A stream of bytes. Errors are I/O errors (a client hanging up mid-upload, a disk failing).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Reads a whole stream into memory (only for small bodies: manifests, the in-memory adapter).
pub async fn collect(mut body: ByteStream) -> Result<Vec<u8>, StoreError> {
    use futures::StreamExt as _;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(|e| StoreError::Body(Box::new(e)))?);
    }
    Ok(out)
}

/// An inclusive byte range `start..=end` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An open blob: its total size and the bytes asked for.
pub struct BlobReader {
    pub size: u64,
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

/// Content-addressed blob storage with upload staging.
///
/// Contract (checked by the blob store port suite):
/// - A blob is visible under its digest only after the digest was verified over the bytes
///   stored; a failed or interrupted write leaves nothing visible at the final key.
/// - `put` of a digest already stored is harmless (idempotent) and still checks the bytes.
/// - Not-found is `StoreError::NotFound`, never an empty body.
/// - Uploads are staged under an id the caller chooses; appends must start at the current
///   size (`OutOfOrder` otherwise); `upload_commit` verifies and publishes, `upload_abort` may
///   be called twice.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The blob's size, or `None` when it is not stored.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Streams the blob, or the inclusive `range` of it (which the caller has checked against
    /// the size from `stat`).
    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader, StoreError>;

    /// Stores `body` under `digest`, hashing on the way. `DigestMismatch` stores nothing.
    async fn put(&self, digest: &Digest, body: ByteStream) -> Result<u64, StoreError>;

    /// Removes the blob; removing a missing blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), StoreError>;

    /// A URL clients may fetch the blob from directly (S3 presigned GET), or `None` when this
    /// store serves bytes itself.
    async fn redirect_url(&self, digest: &Digest, ttl: Duration) -> Result<Option<String>, StoreError>;

    /// Starts an empty upload under `id`.
    async fn upload_create(&self, id: &str) -> Result<(), StoreError>;

    /// Appends `body` at `offset`, which must equal the current size. Returns the new size.
    /// A body that fails midway leaves the upload at a size the next status call reports.
    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, StoreError>;

    /// The upload's current size; `NotFound` for unknown ids.
    async fn upload_size(&self, id: &str) -> Result<u64, StoreError>;

    /// Verifies the upload's bytes against `digest` and publishes them as that blob. On
    /// `DigestMismatch` the upload is discarded and nothing is published.
    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError>;

    /// Discards the upload. Idempotent.
    async fn upload_abort(&self, id: &str) -> Result<(), StoreError>;
}

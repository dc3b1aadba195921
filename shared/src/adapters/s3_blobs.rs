//! The blob store port on S3.
//!
//! Layout of the bucket:
//! - `blobs/<algorithm>/<hex>`: published blobs. An object appears at such a key only after
//!   the bytes were hashed and matched the digest: a body of up to one part is buffered and
//!   written with one `PutObject` after the check; a larger one is written as a multipart upload
//!   to the final key, one part in memory at a time, and completed only when the digest matches
//!   (aborted otherwise). No copy is needed, so blobs over 5 GB work.
//! - `uploads/<id>/_`: the marker `upload_create` writes, so an empty upload is told apart from
//!   an unknown one.
//! - `uploads/<id>/<offset:020>`: each appended chunk, as its own object named by the offset it
//!   starts at; the upload's size is the sum of its chunks. `upload_commit` streams the chunks
//!   in order through the hasher into the final key, as `put` does.
//!
//! Blob GETs can skip the service: [`BlobStore::redirect_url`] answers a presigned GET URL,
//! naming the public endpoint when clients reach S3 at another address than Berth does
//! ([`S3BlobStore::with_public_endpoint`]).
//!
//! Concurrency: two appends racing at the same offset both pass the size check and the later
//! one wins; the registry serves one client per upload session, which never does this.
//!
//! Layering: implements `ports::BlobStore`; knows nothing of manifests or repositories.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, CompletedMultipartUpload,
    CompletedPart, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use super::aws::{code, is_not_found, store_error};
use crate::domain::{Digest, Hasher};
use crate::ports::{BlobReader, BlobStore, ByteRange, ByteStream, StoreError};

/// The default part size of multipart writes, and the largest body written in one request.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (all but the last).
const MIN_PART: usize = 5 * 1024 * 1024;
const MAX_PART: usize = 64 * 1024 * 1024;
/// S3's longest presigned URL lifetime.
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);
/// Days after which a chunk upload nobody finished is removed by the bucket's lifecycle.
const STALE_UPLOAD_DAYS: i32 = 7;

/// The blob store port on one S3 bucket.
#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    /// The client presigned URLs are made with: `client` itself, or one naming the endpoint
    /// clients reach.
    presigner: Client,
    bucket: String,
    part_size: usize,
}

/// What a write checks before its object becomes visible.
enum Check<'a> {
    /// The bytes must hash to this digest.
    Digest(&'a Digest),
    /// Nothing (an upload chunk); an empty body writes no object.
    Chunk,
}

/// A multipart upload in progress.
struct Multipart {
    id: String,
    parts: Vec<CompletedPart>,
}

fn blob_key(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

fn upload_prefix(id: &str) -> String {
    format!("uploads/{id}/")
}

fn marker_key(id: &str) -> String {
    format!("uploads/{id}/_")
}

fn chunk_key(id: &str, offset: u64) -> String {
    format!("uploads/{id}/{offset:020}")
}

/// Upload ids are the registry's UUIDs; anything else is unknown (and never a key outside the
/// upload's folder).
fn valid_upload_id(id: &str) -> Result<(), StoreError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// The client's request body failed.
fn body_error(e: io::Error) -> StoreError {
    StoreError::Body(Box::new(e))
}

/// A failure reading stored chunks back: the `StoreError` the chunk stream carried.
fn chunk_read_error(e: io::Error) -> StoreError {
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<StoreError>()) {
        Some(Ok(store)) => *store,
        Some(Err(other)) => StoreError::Unavailable(other),
        None => StoreError::Unavailable(Box::new(io::Error::from(kind))),
    }
}

/// An S3 object body as the port's byte stream, streamed as it arrives.
fn body_stream(body: S3Body) -> ByteStream {
    Box::pin(futures::stream::unfold(body, |mut b| async move {
        match b.next().await {
            None => None,
            Some(Ok(bytes)) => Some((Ok(bytes), b)),
            Some(Err(e)) => Some((Err(io::Error::other(e)), b)),
        }
    }))
}

/// The total size in a `Content-Range: bytes a-b/total` answer.
fn total_of(content_range: &str) -> Option<u64> {
    content_range.rsplit_once('/')?.1.parse().ok()
}

impl S3BlobStore {
    /// A store on `bucket`. `path_style` addresses the bucket in the path (emulators such as
    /// moto need it) instead of in the host name.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>, path_style: bool) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        Self::from_client(Client::from_conf(conf), bucket)
    }

    pub fn from_client(client: Client, bucket: impl Into<String>) -> Self {
        S3BlobStore {
            presigner: client.clone(),
            client,
            bucket: bucket.into(),
            part_size: PART_SIZE,
        }
    }

    /// Presigns blob URLs for `endpoint` (its scheme, host and port), the address clients
    /// reach S3 at, while Berth's own requests keep going to the configured endpoint.
    pub fn with_public_endpoint(mut self, endpoint: &str) -> Self {
        let conf = self.client.config().to_builder().endpoint_url(endpoint).build();
        self.presigner = Client::from_conf(conf);
        self
    }

    /// Sets the part size of multipart writes (clamped to 5–64 MiB); bodies up to one part
    /// are written in one request.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.clamp(MIN_PART, MAX_PART);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket when it does not exist, then (best effort: failures are logged, as
    /// emulators lack some of it) blocks public access, turns on default encryption, and adds
    /// lifecycle rules that abort multipart uploads left unfinished for a day and remove chunk
    /// uploads nobody finished in a week. Returns whether it created the bucket.
    pub async fn create_bucket_if_missing(&self) -> Result<bool, StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(store_error(e)),
        }
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        let region = self.client.config().region().map(|r| r.as_ref().to_owned());
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) => return Err(store_error(e)),
        }
        tracing::info!(bucket = %self.bucket, "created the S3 bucket");

        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        if let Err(e) = self
            .client
            .put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(block)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = ?e, "could not block public access");
        }

        let sse = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::Aes256)
                            .build()
                            .map_err(StoreError::other)?,
                    )
                    .build(),
            )
            .build()
            .map_err(StoreError::other)?;
        if let Err(e) = self
            .client
            .put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(sse)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = ?e, "could not turn on default encryption");
        }

        let lifecycle = BucketLifecycleConfiguration::builder()
            .rules(
                LifecycleRule::builder()
                    .id("abort-incomplete-multipart-uploads")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("").build())
                    .abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder()
                            .days_after_initiation(1)
                            .build(),
                    )
                    .build()
                    .map_err(StoreError::other)?,
            )
            .rules(
                LifecycleRule::builder()
                    .id("expire-stale-chunk-uploads")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("uploads/").build())
                    .expiration(LifecycleExpiration::builder().days(STALE_UPLOAD_DAYS).build())
                    .build()
                    .map_err(StoreError::other)?,
            )
            .build()
            .map_err(StoreError::other)?;
        if let Err(e) = self
            .client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(lifecycle)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = ?e, "could not set the lifecycle rules");
        }
        Ok(true)
    }

    /// Writes `body` to `key`, making it visible only when `check` holds. Holds at most one
    /// part (plus one incoming chunk) in memory. `on_body_error` maps a failure of `body`.
    async fn write(
        &self,
        key: &str,
        mut body: ByteStream,
        check: Check<'_>,
        on_body_error: fn(io::Error) -> StoreError,
    ) -> Result<u64, StoreError> {
        let mut hasher = match check {
            Check::Digest(d) => Some(Hasher::new(d.algorithm())),
            Check::Chunk => None,
        };
        let mut buf = BytesMut::new();
        let mut total = 0u64;
        let mut multipart: Option<Multipart> = None;
        let result = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(on_body_error)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                total += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                while buf.len() > self.part_size {
                    let part = buf.split_to(self.part_size).freeze();
                    let mp = match multipart.as_mut() {
                        Some(mp) => mp,
                        None => multipart.insert(self.start_multipart(key).await?),
                    };
                    self.upload_part(key, mp, part).await?;
                }
            }
            if let (Some(h), Check::Digest(expected)) = (hasher.take(), &check) {
                let actual = h.finish();
                if &actual != *expected {
                    return Err(StoreError::DigestMismatch {
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    });
                }
            }
            match multipart.as_mut() {
                None if total == 0 && matches!(check, Check::Chunk) => {}
                None => {
                    let len = buf.len() as i64;
                    self.client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .content_length(len)
                        .content_type("application/octet-stream")
                        .body(S3Body::from(buf.split().freeze()))
                        .send()
                        .await
                        .map_err(store_error)?;
                }
                Some(mp) => {
                    if !buf.is_empty() {
                        self.upload_part(key, mp, buf.split().freeze()).await?;
                    }
                    self.client
                        .complete_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&mp.id)
                        .multipart_upload(
                            CompletedMultipartUpload::builder()
                                .set_parts(Some(mp.parts.clone()))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(store_error)?;
                }
            }
            Ok(total)
        }
        .await;
        if result.is_err() {
            if let Some(mp) = multipart {
                self.abort_multipart(key, &mp.id).await;
            }
        }
        result
    }

    async fn start_multipart(&self, key: &str) -> Result<Multipart, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .send()
            .await
            .map_err(store_error)?;
        let id = out
            .upload_id
            .ok_or_else(|| StoreError::other_msg("CreateMultipartUpload answered no upload id"))?;
        Ok(Multipart { id, parts: Vec::new() })
    }

    async fn upload_part(&self, key: &str, mp: &mut Multipart, part: Bytes) -> Result<(), StoreError> {
        let number = mp.parts.len() as i32 + 1;
        let len = part.len() as i64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&mp.id)
            .part_number(number)
            .content_length(len)
            .body(S3Body::from(part))
            .send()
            .await
            .map_err(store_error)?;
        mp.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
        {
            // the bucket's lifecycle rule removes it after a day
            tracing::warn!(bucket = %self.bucket, key, error = ?e, "could not abort a multipart upload");
        }
    }

    /// The objects of an upload: whether its marker exists, and its chunks (key, size) in
    /// offset order.
    async fn upload_objects(&self, id: &str) -> Result<(bool, Vec<(String, u64)>), StoreError> {
        let prefix = upload_prefix(id);
        let marker = marker_key(id);
        let mut has_marker = false;
        let mut chunks = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(store_error)?;
            for o in out.contents() {
                let Some(key) = o.key() else { continue };
                if key == marker {
                    has_marker = true;
                } else {
                    chunks.push((key.to_owned(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        // zero-padded offsets sort in offset order
        chunks.sort();
        Ok((has_marker, chunks))
    }

    /// Deletes these keys, first to last.
    async fn delete_keys(&self, keys: impl IntoIterator<Item = String>) -> Result<(), StoreError> {
        for key in keys {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// Removes an upload: the marker first (the upload is then unknown), then its chunks.
    async fn remove_upload(&self, id: &str, chunks: Vec<(String, u64)>) -> Result<(), StoreError> {
        self.delete_keys(std::iter::once(marker_key(id))).await?;
        self.delete_keys(chunks.into_iter().map(|(k, _)| k)).await
    }

    /// The chunks' bytes, one chunk after the other, streamed.
    fn read_chunks(&self, chunks: Vec<(String, u64)>) -> ByteStream {
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let opened = futures::stream::iter(chunks).then(move |(key, _)| {
            let client = client.clone();
            let bucket = bucket.clone();
            async move {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| io::Error::other(store_error(e)))?;
                Ok::<_, io::Error>(body_stream(out.body))
            }
        });
        Box::pin(opened.try_flatten())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(blob_key(digest))
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length.unwrap_or(0).max(0) as u64)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(blob_key(digest))
            .set_range(range.map(|r| format!("bytes={}-{}", r.start, r.end)))
            .send()
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    StoreError::NotFound
                } else {
                    store_error(e)
                }
            })?;
        let size = match (range, out.content_range()) {
            (Some(_), Some(cr)) => total_of(cr).ok_or_else(|| StoreError::other_msg("unreadable Content-Range"))?,
            _ => out.content_length().unwrap_or(0).max(0) as u64,
        };
        Ok(BlobReader {
            size,
            range,
            body: body_stream(out.body),
        })
    }

    async fn put(&self, digest: &Digest, body: ByteStream) -> Result<u64, StoreError> {
        self.write(&blob_key(digest), body, Check::Digest(digest), body_error)
            .await
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        self.delete_keys(std::iter::once(blob_key(digest))).await
    }

    async fn redirect_url(&self, digest: &Digest, ttl: Duration) -> Result<Option<String>, StoreError> {
        let presign = PresigningConfig::expires_in(ttl.min(MAX_PRESIGN)).map_err(StoreError::other)?;
        let req = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(blob_key(digest))
            .presigned(presign)
            .await
            .map_err(store_error)?;
        Ok(Some(req.uri().to_owned()))
    }

    async fn upload_create(&self, id: &str) -> Result<(), StoreError> {
        valid_upload_id(id)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(marker_key(id))
            .body(S3Body::from_static(b""))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, StoreError> {
        let size = self.upload_size(id).await?;
        if offset != size {
            return Err(StoreError::OutOfOrder { size });
        }
        let n = self.write(&chunk_key(id, size), body, Check::Chunk, body_error).await?;
        Ok(size + n)
    }

    async fn upload_size(&self, id: &str) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        match self.upload_objects(id).await? {
            (false, _) => Err(StoreError::NotFound),
            (true, chunks) => Ok(chunks.iter().map(|(_, n)| n).sum()),
        }
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        let (has_marker, chunks) = self.upload_objects(id).await?;
        if !has_marker {
            return Err(StoreError::NotFound);
        }
        let body = self.read_chunks(chunks.clone());
        let result = self
            .write(&blob_key(digest), body, Check::Digest(digest), chunk_read_error)
            .await;
        match result {
            Ok(_) | Err(StoreError::DigestMismatch { .. }) => {
                if let Err(e) = self.remove_upload(id, chunks).await {
                    // the bucket's lifecycle rule removes what is left
                    tracing::warn!(bucket = %self.bucket, upload = id, error = ?e, "could not remove a finished upload");
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn upload_abort(&self, id: &str) -> Result<(), StoreError> {
        valid_upload_id(id)?;
        let (_, chunks) = self.upload_objects(id).await?;
        self.remove_upload(id, chunks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(blob_key(&d), format!("blobs/sha256/{}", d.hex()));
        assert_eq!(chunk_key("u-1", 5000), "uploads/u-1/00000000000000005000");
        // the marker sorts after every chunk and is not one
        assert!(marker_key("u-1") > chunk_key("u-1", u64::MAX));
        assert!(valid_upload_id("../x").is_err());
        assert!(valid_upload_id("").is_err());
        assert!(valid_upload_id("0d5c-AF").is_ok());
        assert_eq!(total_of("bytes 10-19/100000"), Some(100_000));
        assert_eq!(total_of("bytes */10"), Some(10));
    }

    #[test]
    fn chunk_read_errors_keep_the_store_error() {
        let e = io::Error::other(StoreError::NotFound);
        assert!(matches!(chunk_read_error(e), StoreError::NotFound));
        let e = io::Error::from(io::ErrorKind::TimedOut);
        assert!(matches!(chunk_read_error(e), StoreError::Unavailable(_)));
    }
}

//! The blob store port on S3.
//!
//! Layout of the bucket:
//! - `blobs/<algorithm>/<hex>`: published blobs. An object appears at such a key only after
//!   the bytes were hashed and matched the digest.
//! - `uploads/<id>/`: an upload in progress (see below); nothing under it is ever served.
//!
//! A monolithic `put` (`write.rs`) hashes the body as it streams: a body of up to one part is
//! buffered and written with one `PutObject` after the check; a larger one is written as a
//! multipart upload to the final key, one part in memory at a time, and completed only when the
//! digest matches (aborted otherwise).
//!
//! A chunked upload (`uploads.rs`) writes each byte to S3 once. Its appends go as parts of one
//! multipart upload of the staging key `uploads/<id>/data`; an append's last bytes that are too
//! few for a part (under S3's 5 MiB minimum) wait in a tail object `uploads/<id>/tail-<end>`,
//! which the next append sends again in front of its own bytes (under 5 MiB sent again per
//! append; none when every append but the last brings at least 5 MiB, as with the one PATCH
//! per layer of docker, podman and skopeo). The SHA-256 of the bytes so far is saved with the
//! upload in `uploads/<id>/state` after each append (a small JSON object, also the record that
//! the upload exists), so the commit, in whatever process it runs, checks the digest without
//! reading the bytes back. A match completes the multipart upload (the tail becoming its last
//! part by `UploadPartCopy`) and copies the staged object to its blob key on the server side
//! (`CopyObject`, or a multipart copy over 5 GiB): no body bytes are sent again. A mismatch
//! aborts the multipart upload and removes the staged objects. In memory: one part for a
//! `put`, a part and a minimum part for an append (plus an incoming chunk).
//!
//! Blob GETs can skip the service: [`BlobStore::redirect_url`] answers a presigned GET URL,
//! naming the public endpoint when clients reach S3 at another address than Berth does
//! ([`S3BlobStore::with_public_endpoint`]).
//!
//! Layering: implements `ports::BlobStore`; knows nothing of manifests or repositories.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::aws::{is_not_found, store_error};
use crate::domain::Digest;
use crate::ports::{BlobReader, BlobStore, ByteRange, ByteStream, StoreError};

mod bucket;
mod uploads;
mod write;

/// The default part size of multipart writes, and the largest body written in one request.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (all but the last).
const MIN_PART: usize = 5 * 1024 * 1024;
const MAX_PART: usize = 64 * 1024 * 1024;
/// The largest object `CopyObject` copies; larger ones are copied in parts.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// The part size of multipart copies.
const COPY_PART: u64 = 512 * 1024 * 1024;
/// S3's longest presigned URL lifetime.
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// The blob store port on one S3 bucket.
#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    /// The client presigned URLs are made with: `client` itself, or one naming the endpoint
    /// clients reach.
    presigner: Client,
    bucket: String,
    part_size: usize,
    /// Objects up to this size are copied with one `CopyObject`.
    max_copy: u64,
    /// The part size of larger copies.
    copy_part: u64,
}

fn blob_key(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
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
            max_copy: MAX_COPY,
            copy_part: COPY_PART,
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

    /// Copies objects over `max_copy` bytes in parts of `copy_part` (at least 5 MiB), so
    /// tests reach the multipart copy with little data.
    #[cfg(all(test, feature = "moto"))]
    pub(crate) fn with_copy_limits(mut self, max_copy: u64, copy_part: u64) -> Self {
        self.max_copy = max_copy;
        self.copy_part = copy_part.max(MIN_PART as u64);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The whole object at `key` (a small one: an upload's state or tail), when its ETag is
    /// `etag` if one is given. A missing object is `NotFound`.
    async fn get_bytes(&self, key: &str, etag: Option<&str>) -> Result<Bytes, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(etag.map(str::to_owned))
            .send()
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    StoreError::NotFound
                } else {
                    store_error(e)
                }
            })?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(body.into_bytes())
    }

    /// Writes `bytes` to `key` in one request; returns the object's ETag.
    async fn put_bytes(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<Option<String>, StoreError> {
        let len = bytes.len() as i64;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len)
            .content_type(content_type)
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.e_tag)
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

    /// The keys under `prefix`.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(store_error)?;
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        Ok(keys)
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
        self.write(&blob_key(digest), body, digest).await
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
        self.create_upload(id).await
    }

    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, StoreError> {
        self.append(id, offset, body).await
    }

    async fn upload_size(&self, id: &str) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        Ok(self.load_upload(id).await?.size)
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        self.commit(id, digest).await
    }

    async fn upload_abort(&self, id: &str) -> Result<(), StoreError> {
        self.abort(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(blob_key(&d), format!("blobs/sha256/{}", d.hex()));
        assert!(valid_upload_id("../x").is_err());
        assert!(valid_upload_id("").is_err());
        assert!(valid_upload_id("0d5c-AF").is_ok());
        assert_eq!(total_of("bytes 10-19/100000"), Some(100_000));
        assert_eq!(total_of("bytes */10"), Some(10));
    }
}

//! Writing objects: a monolithic `put` hashed on the way and made visible only when its digest
//! matches, the multipart requests it and chunked uploads share, and server-side copies.
//!
//! Layering: part of the S3 adapter (`adapters::s3_blobs`).

use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use super::{body_error, S3BlobStore};
use crate::adapters::aws::{is_not_found, store_error};
use crate::domain::{Digest, Hasher};
use crate::ports::{ByteStream, StoreError};

/// How many parts of a multipart copy are copied at once.
const COPY_CONCURRENCY: usize = 4;

/// A multipart upload in progress.
pub(super) struct Multipart {
    pub(super) id: String,
    pub(super) parts: Vec<CompletedPart>,
}

/// A completed part: its number and ETag.
pub(super) fn completed(number: i32, e_tag: Option<String>) -> CompletedPart {
    CompletedPart::builder().part_number(number).set_e_tag(e_tag).build()
}

impl S3BlobStore {
    /// Writes `body` to `key`, making it visible only when its bytes hash to `digest`. Holds at
    /// most one part (plus one incoming chunk) in memory.
    pub(super) async fn write(&self, key: &str, mut body: ByteStream, digest: &Digest) -> Result<u64, StoreError> {
        let mut hasher = Hasher::new(digest.algorithm());
        let mut buf = BytesMut::new();
        let mut total = 0u64;
        let mut multipart: Option<Multipart> = None;
        let result = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(body_error)?;
                hasher.update(&chunk);
                total += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                while buf.len() > self.part_size {
                    let part = buf.split_to(self.part_size).freeze();
                    let mp = match multipart.as_mut() {
                        Some(mp) => mp,
                        None => multipart.insert(self.start_multipart(key).await?),
                    };
                    let number = mp.parts.len() as i32 + 1;
                    let e_tag = self.send_part(key, &mp.id, number, part).await?;
                    mp.parts.push(completed(number, e_tag));
                }
            }
            let actual = hasher.finish();
            if &actual != digest {
                return Err(StoreError::DigestMismatch {
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
            match multipart.as_mut() {
                None => {
                    self.put_bytes(key, buf.split().freeze(), "application/octet-stream")
                        .await?;
                }
                Some(mp) => {
                    if !buf.is_empty() {
                        let number = mp.parts.len() as i32 + 1;
                        let e_tag = self.send_part(key, &mp.id, number, buf.split().freeze()).await?;
                        mp.parts.push(completed(number, e_tag));
                    }
                    self.complete_multipart(key, &mp.id, mp.parts.clone()).await?;
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

    pub(super) async fn start_multipart(&self, key: &str) -> Result<Multipart, StoreError> {
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

    /// Sends part `number` of the multipart upload `upload_id` of `key`; returns its ETag.
    pub(super) async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
    ) -> Result<Option<String>, StoreError> {
        let len = part.len() as i64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(len)
            .body(S3Body::from(part))
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.e_tag)
    }

    /// Makes part `number` of the multipart upload `upload_id` of `key` from the bytes
    /// `range` (inclusive; all of them when `None`) of the object `source`, on the server
    /// side; only when `source` has the ETag `source_etag`, if one is given. Returns the part's
    /// ETag.
    pub(super) async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        source: &str,
        source_etag: Option<&str>,
        range: Option<(u64, u64)>,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(format!("{}/{source}", self.bucket))
            .set_copy_source_if_match(source_etag.map(str::to_owned))
            .set_copy_source_range(range.map(|(a, b)| format!("bytes={a}-{b}")))
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.copy_part_result.and_then(|r| r.e_tag))
    }

    /// Completes a multipart upload with these parts (S3 checks each part's ETag).
    pub(super) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Aborts a multipart upload, best effort: the bucket's lifecycle rule aborts what is left
    /// after a day. One already completed or aborted is left as it is.
    pub(super) async fn abort_multipart(&self, key: &str, id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
        {
            if !is_not_found(&e) {
                tracing::warn!(bucket = %self.bucket, key, error = ?e, "could not abort a multipart upload");
            }
        }
    }

    /// Copies the object `source` (`size` bytes; with the ETag `source_etag`, if one is given)
    /// to `key` on the server side: one `CopyObject` up to its 5 GiB limit, a multipart upload
    /// of `UploadPartCopy` parts above it. No body bytes are sent.
    pub(super) async fn copy(
        &self,
        source: &str,
        source_etag: Option<&str>,
        size: u64,
        key: &str,
    ) -> Result<(), StoreError> {
        if size <= self.max_copy {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(key)
                .copy_source(format!("{}/{source}", self.bucket))
                .set_copy_source_if_match(source_etag.map(str::to_owned))
                .send()
                .await
                .map_err(store_error)?;
            return Ok(());
        }
        let mp = self.start_multipart(key).await?;
        let ranges: Vec<(i32, u64, u64)> = (0..size)
            .step_by(self.copy_part as usize)
            .enumerate()
            .map(|(i, start)| (i as i32 + 1, start, (start + self.copy_part).min(size) - 1))
            .collect();
        let parts = futures::stream::iter(ranges)
            .map(|(number, start, end)| {
                let mp_id = &mp.id;
                async move {
                    let e_tag = self
                        .copy_part(key, mp_id, number, source, source_etag, Some((start, end)))
                        .await?;
                    Ok::<_, StoreError>(completed(number, e_tag))
                }
            })
            .buffered(COPY_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await;
        let result = match parts {
            Ok(parts) => self.complete_multipart(key, &mp.id, parts).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.abort_multipart(key, &mp.id).await;
        }
        result
    }
}

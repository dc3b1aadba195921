//! Chunked uploads on S3, each byte written once.
//!
//! Objects of the upload `<id>`, all under `uploads/<id>/`:
//! - `state`: what the upload holds, as JSON ([`UploadState`]): its size, the multipart upload
//!   of the staging key and the parts sent to it (size and ETag each), the tail's size and
//!   ETag, and the SHA-256 of every byte so far ([`ResumableSha256`]). `upload_create` writes
//!   it and every append that received bytes rewrites it (a few hundred bytes, plus about 50
//!   per part); an upload without one is unknown.
//! - `data`: the staging key. Appended bytes are sent as parts of one multipart upload of it,
//!   started by the first append with a part to send; the commit completes it.
//! - `tail-<end>`: the last bytes of the upload (ending at byte `end`), too few for a part.
//!
//! An append reads the state (the offset must equal its size: `OutOfOrder` otherwise), puts
//! the tail's bytes, if any, in front of its own, and sends parts of the part size while it
//! holds more than a part and a minimum part (5 MiB), so that its last part takes its last
//! bytes whenever they come to 5 MiB or more. Only what is left under 5 MiB becomes the new
//! tail. Memory: at most a part, a minimum part and an incoming chunk per append. Bytes sent
//! again: the previous tail, under 5 MiB per append, and nothing when every append but the last
//! brings at least 5 MiB (a push in one PATCH never has a tail to send again; the last tail
//! becomes the last part on the server side). The new state is written last; until then the
//! old one, its parts and its tail (whose key names its end, so a new tail never replaces it)
//! stay valid.
//!
//! A body that fails midway keeps what arrived: the bytes received are sent as a part or a
//! tail and saved as any append's, and the append answers the body's error; the next status
//! call reports the new size. When S3 fails instead, nothing is saved and the upload stays at
//! its old size: parts this append sent are numbered past the saved ones, so the next append
//! replaces them or the commit leaves them out (S3 discards parts a completion does not name).
//!
//! The commit finishes the saved SHA-256 and compares it with the digest before anything else.
//! On a match it completes the multipart upload, the tail becoming its last part by
//! `UploadPartCopy` (S3 allows the last part to be small), and copies `data` to the blob key on
//! the server side; an upload without parts copies its tail; an empty one writes an empty blob.
//! On a mismatch it aborts the multipart upload and removes every object of the upload; no
//! blob key is written. Either way the upload is then gone. Only the SHA-256 is kept as bytes
//! arrive (a digest's algorithm is known only at commit, and nearly every digest is a SHA-256):
//! a sha512 commit stages the bytes the same way, reads them back once to hash them, and copies
//! them only when they match.
//!
//! Concurrency: two appends racing at the same offset both pass the size check, and the state
//! written last wins. Should the other's parts or tail have replaced its own, the commit fails
//! rather than publish other bytes than the ones hashed: S3 checks each part's ETag when
//! completing, and the tail is copied only while its ETag is the saved one. The registry
//! serves one client per upload session, which never does this.
//!
//! Layering: part of the S3 adapter (`adapters::s3_blobs`).

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::write::completed;
use super::{blob_key, body_error, valid_upload_id, S3BlobStore, MIN_PART};
use crate::domain::{Algorithm, Digest, Hasher, ResumableSha256};
use crate::ports::{ByteStream, StoreError};

const OCTETS: &str = "application/octet-stream";

fn upload_prefix(id: &str) -> String {
    format!("uploads/{id}/")
}

fn state_key(id: &str) -> String {
    format!("uploads/{id}/state")
}

fn staging_key(id: &str) -> String {
    format!("uploads/{id}/data")
}

fn tail_key(id: &str, end: u64) -> String {
    format!("uploads/{id}/tail-{end:020}")
}

/// A part sent to the staging key's multipart upload; the n-th in the list is part n.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

/// What an upload holds, saved at `uploads/<id>/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UploadState {
    /// Bytes appended: those in the parts, then those in the tail.
    pub(super) size: u64,
    /// The id of the staging key's multipart upload, once a part was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<Part>,
    /// The size of the tail (`tail-<size>`); 0 when there is none.
    #[serde(default)]
    tail: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail_etag: Option<String>,
    /// The SHA-256 of the `size` bytes.
    sha256: ResumableSha256,
}

impl UploadState {
    fn new() -> Self {
        UploadState {
            size: 0,
            multipart: None,
            parts: Vec::new(),
            tail: 0,
            tail_etag: None,
            sha256: ResumableSha256::new(),
        }
    }

    /// Refuses a state whose numbers do not add up (this code never writes one).
    fn check(self) -> Result<Self, StoreError> {
        let in_parts: u64 = self.parts.iter().map(|p| p.size).sum();
        if in_parts + self.tail != self.size
            || self.sha256.len() != self.size
            || (!self.parts.is_empty() && self.multipart.is_none())
        {
            return Err(StoreError::other_msg("an upload's saved state does not add up"));
        }
        Ok(self)
    }
}

/// Where a verified upload's bytes are before they are copied to the blob key.
enum Staged {
    /// The object at this key, with this ETag when known.
    Object(String, Option<String>),
    /// Nowhere: the upload is empty.
    Empty,
}

impl S3BlobStore {
    pub(super) async fn load_upload(&self, id: &str) -> Result<UploadState, StoreError> {
        let json = self.get_bytes(&state_key(id), None).await?;
        serde_json::from_slice::<UploadState>(&json)
            .map_err(StoreError::other)?
            .check()
    }

    async fn save_upload(&self, id: &str, state: &UploadState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(StoreError::other)?;
        self.put_bytes(&state_key(id), Bytes::from(json), "application/json")
            .await?;
        Ok(())
    }

    pub(super) async fn create_upload(&self, id: &str) -> Result<(), StoreError> {
        valid_upload_id(id)?;
        self.save_upload(id, &UploadState::new()).await
    }

    /// Sends `part` as the next part of the upload's multipart upload, starting that when
    /// there is none yet (and noting it in `started`).
    async fn add_part(
        &self,
        id: &str,
        state: &mut UploadState,
        started: &mut Option<String>,
        part: Bytes,
    ) -> Result<(), StoreError> {
        let key = staging_key(id);
        let upload_id = match &state.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self.start_multipart(&key).await?.id;
                *started = Some(m.clone());
                state.multipart = Some(m.clone());
                m
            }
        };
        let number = state.parts.len() as i32 + 1;
        let size = part.len() as u64;
        let etag = self.send_part(&key, &upload_id, number, part).await?;
        state.parts.push(Part { size, etag });
        Ok(())
    }

    pub(super) async fn append(&self, id: &str, offset: u64, mut body: ByteStream) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        let before = self.load_upload(id).await?;
        if offset != before.size {
            return Err(StoreError::OutOfOrder { size: before.size });
        }
        let mut after = before.clone();
        let mut buf = BytesMut::new();
        // whether a byte arrived (and the old tail, read then, is at the front of `buf`)
        let mut received = false;
        let mut started: Option<String> = None;
        let mut failed_body = None;
        // whether the failure, if any, was writing the state (which may have landed)
        let mut saving = false;
        let sent = async {
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        failed_body = Some(e);
                        break;
                    }
                };
                if chunk.is_empty() {
                    continue;
                }
                if !received {
                    received = true;
                    if before.tail > 0 {
                        let tail = tail_key(id, before.size);
                        buf.extend_from_slice(&self.get_bytes(&tail, before.tail_etag.as_deref()).await?);
                    }
                }
                after.sha256.update(&chunk);
                after.size += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                // a minimum part is held back, so that the last part takes the last bytes
                while buf.len() >= self.part_size + MIN_PART {
                    let part = buf.split_to(self.part_size).freeze();
                    self.add_part(id, &mut after, &mut started, part).await?;
                }
            }
            if !received {
                return Ok(false);
            }
            if buf.len() >= MIN_PART {
                self.add_part(id, &mut after, &mut started, buf.split().freeze())
                    .await?;
                after.tail = 0;
                after.tail_etag = None;
            } else {
                after.tail = buf.len() as u64;
                after.tail_etag = self
                    .put_bytes(&tail_key(id, after.size), buf.split().freeze(), OCTETS)
                    .await?;
            }
            saving = true;
            self.save_upload(id, &after).await?;
            Ok(true)
        }
        .await;
        match sent {
            Ok(true) if before.tail > 0 => {
                // sent again in front of this append's bytes; what is left the upload's removal
                // or the bucket's lifecycle takes
                if let Err(e) = self.delete_keys([tail_key(id, before.size)]).await {
                    tracing::warn!(bucket = %self.bucket, upload = id, error = ?e, "could not remove an upload's old tail");
                }
            }
            Ok(_) => {}
            Err(e) => {
                // a multipart upload this append started, which no saved state names unless
                // the failed write was the state's (then the bucket's lifecycle aborts it)
                if let Some(m) = started.filter(|_| !saving) {
                    self.abort_multipart(&staging_key(id), &m).await;
                }
                if let Some(b) = failed_body {
                    tracing::warn!(bucket = %self.bucket, upload = id, error = ?e, "could not keep what a failed body sent");
                    return Err(body_error(b));
                }
                return Err(e);
            }
        }
        match failed_body {
            Some(b) => Err(body_error(b)),
            None => Ok(after.size),
        }
    }

    pub(super) async fn commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        let state = self.load_upload(id).await?;
        let result = self.verify_and_publish(id, &state, digest).await;
        if matches!(result, Ok(_) | Err(StoreError::DigestMismatch { .. })) {
            if let Err(e) = self.remove_upload(id, Some(&state)).await {
                // the bucket's lifecycle rules remove what is left
                tracing::warn!(bucket = %self.bucket, upload = id, error = ?e, "could not remove a finished upload");
            }
        }
        result
    }

    async fn verify_and_publish(&self, id: &str, state: &UploadState, digest: &Digest) -> Result<u64, StoreError> {
        let mismatch = |actual: Digest| StoreError::DigestMismatch {
            expected: digest.to_string(),
            actual: actual.to_string(),
        };
        let staged = if digest.algorithm() == Algorithm::Sha256 {
            let actual = state.sha256.finish();
            if &actual != digest {
                return Err(mismatch(actual));
            }
            self.stage(id, state).await?
        } else {
            let staged = self.stage(id, state).await?;
            let actual = self.hash_staged(&staged, digest.algorithm()).await?;
            if &actual != digest {
                return Err(mismatch(actual));
            }
            staged
        };
        let key = blob_key(digest);
        match staged {
            Staged::Object(source, etag) => self.copy(&source, etag.as_deref(), state.size, &key).await?,
            Staged::Empty => {
                self.put_bytes(&key, Bytes::new(), OCTETS).await?;
            }
        }
        Ok(state.size)
    }

    /// Gets the upload's bytes into one object: the staging key, by completing its multipart
    /// upload (the tail copied in as the last part), or the tail when there are no parts.
    async fn stage(&self, id: &str, state: &UploadState) -> Result<Staged, StoreError> {
        let tail = tail_key(id, state.size);
        let Some(upload_id) = state.multipart.as_deref().filter(|_| !state.parts.is_empty()) else {
            return Ok(if state.tail > 0 {
                Staged::Object(tail, state.tail_etag.clone())
            } else {
                Staged::Empty
            });
        };
        let key = staging_key(id);
        let mut parts: Vec<_> = (1..)
            .zip(&state.parts)
            .map(|(n, p)| completed(n, p.etag.clone()))
            .collect();
        if state.tail > 0 {
            let n = parts.len() as i32 + 1;
            let etag = self
                .copy_part(&key, upload_id, n, &tail, state.tail_etag.as_deref(), None)
                .await?;
            parts.push(completed(n, etag));
        }
        self.complete_multipart(&key, upload_id, parts).await?;
        Ok(Staged::Object(key, None))
    }

    /// Reads the staged bytes back and hashes them.
    async fn hash_staged(&self, staged: &Staged, algorithm: Algorithm) -> Result<Digest, StoreError> {
        let mut hasher = Hasher::new(algorithm);
        if let Staged::Object(key, etag) = staged {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .set_if_match(etag.clone())
                .send()
                .await
                .map_err(crate::adapters::aws::store_error)?;
            let mut body = out.body;
            while let Some(chunk) = body.next().await {
                hasher.update(&chunk.map_err(|e| StoreError::Unavailable(Box::new(e)))?);
            }
        }
        Ok(hasher.finish())
    }

    pub(super) async fn abort(&self, id: &str) -> Result<(), StoreError> {
        valid_upload_id(id)?;
        let state = match self.load_upload(id).await {
            Ok(s) => Some(s),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        self.remove_upload(id, state.as_ref()).await
    }

    /// Removes an upload: its state first (the upload is then unknown), its multipart upload
    /// (when still open), then every object left under its prefix.
    async fn remove_upload(&self, id: &str, state: Option<&UploadState>) -> Result<(), StoreError> {
        self.delete_keys([state_key(id)]).await?;
        if let Some(m) = state.and_then(|s| s.multipart.as_deref()) {
            self.abort_multipart(&staging_key(id), m).await;
        }
        let keys = self.list_keys(&upload_prefix(id)).await?;
        self.delete_keys(keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(state_key("u-1"), "uploads/u-1/state");
        assert_eq!(staging_key("u-1"), "uploads/u-1/data");
        assert_eq!(tail_key("u-1", 5000), "uploads/u-1/tail-00000000000000005000");
        for k in [state_key("u-1"), staging_key("u-1"), tail_key("u-1", 1)] {
            assert!(k.starts_with(&upload_prefix("u-1")));
        }
    }

    #[test]
    fn states_round_trip_and_must_add_up() {
        let mut s = UploadState::new();
        assert_eq!(
            serde_json::from_slice::<UploadState>(&serde_json::to_vec(&s).unwrap()).unwrap(),
            s
        );
        s.sha256.update(&[7; 100]);
        s.size = 100;
        s.multipart = Some("m".into());
        s.parts.push(Part {
            size: 60,
            etag: Some("\"e1\"".into()),
        });
        s.tail = 40;
        s.tail_etag = Some("\"e2\"".into());
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<UploadState>(&json).unwrap(), s);
        assert!(s.clone().check().is_ok());
        let mut wrong = s.clone();
        wrong.tail = 39;
        assert!(wrong.check().is_err());
        let mut wrong = s.clone();
        wrong.multipart = None;
        assert!(wrong.check().is_err());
        let mut wrong = s;
        wrong.sha256.update(b"x");
        assert!(wrong.check().is_err());
    }
}

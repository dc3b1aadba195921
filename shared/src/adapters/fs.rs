//! The embedded blob store: content-addressed files under a data directory.
//!
//! Layout: `blobs/<algorithm>/<hex[..2]>/<hex>` for published blobs, `uploads/<id>` for upload
//! staging, `tmp/` for writes in progress. A blob is written to `tmp/`, hashed on the way,
//! flushed to disk, and renamed into place only when its digest matches, so a crash or an
//! interrupted write never leaves a partial file at a blob's path. `tmp/` is emptied at open.
//!
//! When the disk (or the quota) fills up, every write answers [`StoreError::NoSpace`] and leaves
//! nothing behind, so the space comes back at once: a blob's file in `tmp/` is removed, and so
//! is an upload's whole staging file in `uploads/` when one of its appends runs out of space.
//! The session then no longer exists (`NotFound`); the client starts the upload again.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::fs::{self, File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::domain::{Algorithm, Digest, Hasher};
use crate::ports::{BlobReader, BlobStore, ByteRange, ByteStream, StoreError};

const READ_CHUNK: usize = 256 * 1024;

/// Per-upload state kept in memory: a running sha256 over the bytes appended so far, so a
/// single-request or streamed upload is not read again to be verified. Lost on restart, in
/// which case the commit re-reads the file.
struct UploadState {
    hashed: u64,
    sha256: Option<Hasher>,
}

pub struct FsBlobStore {
    root: PathBuf,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>,
}

fn io(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::NotFound
    } else if StoreError::io_is_out_of_space(&e) {
        StoreError::NoSpace(Box::new(e))
    } else {
        StoreError::other(e)
    }
}

fn valid_upload_id(id: &str) -> Result<(), StoreError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

impl FsBlobStore {
    /// Opens the store under `root`, creating its folders and removing unfinished writes.
    pub async fn open(root: &Path) -> Result<Self, StoreError> {
        for d in ["blobs", "uploads", "tmp"] {
            fs::create_dir_all(root.join(d)).await.map_err(io)?;
        }
        let tmp = root.join("tmp");
        let mut entries = fs::read_dir(&tmp).await.map_err(io)?;
        while let Some(e) = entries.next_entry().await.map_err(io)? {
            let _ = fs::remove_file(e.path()).await;
        }
        Ok(FsBlobStore {
            root: root.to_owned(),
            uploads: Mutex::new(HashMap::new()),
        })
    }

    /// Removes the staged bytes of uploads untouched for `idle` (their sessions have expired
    /// by then); returns how many.
    pub async fn sweep_uploads(&self, idle: Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut entries = fs::read_dir(self.root.join("uploads")).await.map_err(io)?;
        while let Some(e) = entries.next_entry().await.map_err(io)? {
            let stale = match e.metadata().await.and_then(|m| m.modified()) {
                Ok(at) => at.elapsed().is_ok_and(|age| age >= idle),
                Err(_) => false,
            };
            if stale && fs::remove_file(e.path()).await.is_ok() {
                if let Some(id) = e.file_name().to_str() {
                    self.forget(id);
                }
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn state(&self, id: &str) -> Result<Arc<tokio::sync::Mutex<UploadState>>, StoreError> {
        let mut map = self
            .uploads
            .lock()
            .map_err(|_| StoreError::other_msg("upload map lock poisoned"))?;
        Ok(map
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(UploadState {
                    hashed: 0,
                    sha256: None,
                }))
            })
            .clone())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut map) = self.uploads.lock() {
            map.remove(id);
        }
    }

    /// Moves a verified file into place at the blob's path.
    async fn publish(&self, from: &Path, digest: &Digest) -> Result<(), StoreError> {
        let to = self.blob_path(digest);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).await.map_err(io)?;
        }
        fs::rename(from, &to).await.map_err(io)
    }

    /// Hashes a file from the start.
    async fn hash_file(path: &Path, algorithm: Algorithm) -> Result<(Digest, u64), StoreError> {
        let mut f = File::open(path).await.map_err(io)?;
        let mut h = Hasher::new(algorithm);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut n_total = 0u64;
        loop {
            let n = f.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            n_total += n as u64;
        }
        Ok((h.finish(), n_total))
    }
}

/// Writes `body` to `f`, feeding `hasher`; returns bytes written. On a body error, returns it.
async fn pump(f: &mut File, mut body: ByteStream, mut hasher: Option<&mut Hasher>) -> Result<u64, StoreError> {
    // Whatever happens, what was written is flushed before this returns, so the file's
    // length is the truth about the upload.
    let mut n = 0u64;
    let mut result = Ok(());
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                result = Err(StoreError::Body(Box::new(e)));
                break;
            }
        };
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&chunk);
        }
        if let Err(e) = f.write_all(&chunk).await {
            result = Err(io(e));
            break;
        }
        n += chunk.len() as u64;
    }
    let flushed = f.flush().await.map_err(io);
    result?;
    flushed?;
    Ok(n)
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::other(e)),
        }
    }

    async fn open(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader, StoreError> {
        let mut f = File::open(self.blob_path(digest)).await.map_err(io)?;
        let size = f.metadata().await.map_err(io)?.len();
        let body: ByteStream = match range {
            Some(r) => {
                if r.end >= size {
                    return Err(StoreError::other_msg("range beyond the blob"));
                }
                f.seek(SeekFrom::Start(r.start)).await.map_err(io)?;
                Box::pin(ReaderStream::with_capacity(f.take(r.len()), READ_CHUNK))
            }
            None => Box::pin(ReaderStream::with_capacity(f, READ_CHUNK)),
        };
        Ok(BlobReader { size, range, body })
    }

    async fn put(&self, digest: &Digest, body: ByteStream) -> Result<u64, StoreError> {
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut f = File::create(&tmp).await.map_err(io)?;
        let mut h = Hasher::new(digest.algorithm());
        let result = async {
            let n = pump(&mut f, body, Some(&mut h)).await?;
            let actual = h.finish();
            if &actual != digest {
                return Err(StoreError::DigestMismatch {
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
            f.sync_all().await.map_err(io)?;
            drop(f);
            self.publish(&tmp, digest).await?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&tmp).await;
        }
        result
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::other(e)),
        }
    }

    async fn redirect_url(&self, _: &Digest, _: Duration) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn upload_create(&self, id: &str) -> Result<(), StoreError> {
        valid_upload_id(id)?;
        File::create(self.upload_path(id)).await.map_err(io)?;
        let st = self.state(id)?;
        let mut st = st.lock().await;
        st.hashed = 0;
        st.sha256 = Some(Hasher::new(Algorithm::Sha256));
        Ok(())
    }

    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        let path = self.upload_path(id);
        let st = self.state(id)?;
        let mut st = st.lock().await;
        let mut f = OpenOptions::new().append(true).open(&path).await.map_err(io)?;
        let size = f.metadata().await.map_err(io)?.len();
        if size != offset {
            return Err(StoreError::OutOfOrder { size });
        }
        let track = st.sha256.is_some() && st.hashed == size;
        let mut hasher = if track { st.sha256.take() } else { None };
        let result = pump(&mut f, body, hasher.as_mut()).await;
        match result {
            Ok(n) => {
                if let Some(h) = hasher {
                    st.sha256 = Some(h);
                    st.hashed = size + n;
                }
                Ok(size + n)
            }
            Err(e @ StoreError::NoSpace(_)) => {
                // The staged bytes go at once, not at the next sweep: the space is needed back.
                drop(f);
                let removed = fs::remove_file(&path).await;
                drop(st);
                self.forget(id);
                if let Err(re) = removed {
                    tracing::warn!(upload = id, error = %re, "removing an upload that ran out of space failed");
                }
                Err(e)
            }
            Err(e) => {
                // Part of the body may have been written; the hash no longer covers the file.
                st.sha256 = None;
                Err(e)
            }
        }
    }

    async fn upload_size(&self, id: &str) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        Ok(fs::metadata(self.upload_path(id)).await.map_err(io)?.len())
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        valid_upload_id(id)?;
        let path = self.upload_path(id);
        let st = self.state(id)?;
        let mut st = st.lock().await;
        let size = fs::metadata(&path).await.map_err(io)?.len();
        let actual = match (&st.sha256, digest.algorithm()) {
            (Some(_), Algorithm::Sha256) if st.hashed == size => match st.sha256.take() {
                Some(h) => h.finish(),
                None => Self::hash_file(&path, digest.algorithm()).await?.0,
            },
            _ => Self::hash_file(&path, digest.algorithm()).await?.0,
        };
        if &actual != digest {
            let _ = fs::remove_file(&path).await;
            drop(st);
            self.forget(id);
            return Err(StoreError::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        File::open(&path).await.map_err(io)?.sync_all().await.map_err(io)?;
        self.publish(&path, digest).await?;
        drop(st);
        self.forget(id);
        Ok(size)
    }

    async fn upload_abort(&self, id: &str) -> Result<(), StoreError> {
        valid_upload_id(id)?;
        match fs::remove_file(self.upload_path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::other(e)),
        }
        self.forget(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_suite::stream;

    /// Staged bytes of uploads idle for longer than the limit are removed; others stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_removes_idle_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(dir.path()).await.unwrap();
        s.upload_create("u-1").await.unwrap();
        s.upload_append("u-1", 0, stream(b"half")).await.unwrap();
        assert_eq!(s.sweep_uploads(Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(s.upload_size("u-1").await.unwrap(), 4);
        assert_eq!(s.sweep_uploads(Duration::ZERO).await.unwrap(), 1);
        assert!(matches!(s.upload_size("u-1").await, Err(StoreError::NotFound)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unfinished_writes_are_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("tmp/partial"), b"half a layer").unwrap();
        let _s = FsBlobStore::open(dir.path()).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}

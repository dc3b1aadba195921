//! The blob store port: verified before visible (invariant 3), ranges, idempotent puts and
//! deletes, chunked uploads, and interrupted writes.

use crate::domain::{Algorithm, Digest, Hasher};
use crate::ports::{ByteRange, StoreError};

use super::{failing_stream, read_all, stream, Adapter};

/// 100,000 bytes that are not all alike.
fn data() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

fn sha512_of_five() -> Digest {
    let mut h = Hasher::new(Algorithm::Sha512);
    h.update(b"five!");
    h.finish()
}

/// A wrong digest stores nothing; an interrupted body stores nothing.
pub async fn verified_before_visible(a: &impl Adapter) {
    let s = a.blobs().await;
    let data = data();
    let d = Digest::sha256_of(&data);
    let wrong = Digest::sha256_of(b"something else");
    assert!(matches!(
        s.put(&wrong, stream(&data)).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    // an interrupted body stores nothing
    assert!(matches!(
        s.put(&d, failing_stream(&data[..10])).await,
        Err(StoreError::Body(_))
    ));
    assert_eq!(s.stat(&d).await.unwrap(), None);
    assert!(matches!(s.open(&d, None).await, Err(StoreError::NotFound)));
}

/// A blob reads back whole and by ranges; puts and deletes are idempotent.
pub async fn put_read_and_delete(a: &impl Adapter) {
    let s = a.blobs().await;
    let data = data();
    let d = Digest::sha256_of(&data);
    assert_eq!(s.put(&d, stream(&data)).await.unwrap(), data.len() as u64);
    assert_eq!(s.stat(&d).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(&*s, &d, None).await, data);
    // idempotent
    assert_eq!(s.put(&d, stream(&data)).await.unwrap(), data.len() as u64);
    // ranges
    assert_eq!(
        read_all(&*s, &d, Some(ByteRange { start: 10, end: 19 })).await,
        &data[10..20]
    );
    let last = data.len() as u64 - 1;
    assert_eq!(
        read_all(&*s, &d, Some(ByteRange { start: last, end: last })).await,
        &data[data.len() - 1..]
    );
    s.delete(&d).await.unwrap();
    s.delete(&d).await.unwrap();
    assert_eq!(s.stat(&d).await.unwrap(), None);
}

/// A sha512 digest and an empty blob.
pub async fn sha512_and_empty_blobs(a: &impl Adapter) {
    let s = a.blobs().await;
    let d512 = sha512_of_five();
    s.put(&d512, stream(b"five!")).await.unwrap();
    assert_eq!(read_all(&*s, &d512, None).await, b"five!");
    let de = Digest::sha256_of(b"");
    assert_eq!(s.put(&de, stream(b"")).await.unwrap(), 0);
    assert_eq!(s.stat(&de).await.unwrap(), Some(0));
}

/// Uploads are chunked, in order, and a blob only once committed.
pub async fn chunked_upload(a: &impl Adapter) {
    let s = a.blobs().await;
    let data = data();
    let d = Digest::sha256_of(&data);
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    assert_eq!(s.upload_size(&id).await.unwrap(), 0);
    assert_eq!(s.upload_append(&id, 0, stream(&data[..5000])).await.unwrap(), 5000);
    assert!(matches!(
        s.upload_append(&id, 0, stream(&data[..10])).await,
        Err(StoreError::OutOfOrder { size: 5000 })
    ));
    assert!(matches!(
        s.upload_append(&id, 9000, stream(&data[..10])).await,
        Err(StoreError::OutOfOrder { size: 5000 })
    ));
    assert_eq!(
        s.upload_append(&id, 5000, stream(&data[5000..])).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(
        s.stat(&d).await.unwrap(),
        None,
        "an upload is not a blob until committed"
    );
    assert_eq!(s.upload_commit(&id, &d).await.unwrap(), data.len() as u64);
    assert_eq!(read_all(&*s, &d, None).await, data);
    assert!(matches!(s.upload_size(&id).await, Err(StoreError::NotFound)));
}

/// A mismatching commit discards the upload and publishes nothing.
pub async fn a_mismatching_commit_publishes_nothing(a: &impl Adapter) {
    let s = a.blobs().await;
    let wrong = Digest::sha256_of(b"something else");
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    s.upload_append(&id, 0, stream(b"abc")).await.unwrap();
    let d_abc = Digest::sha256_of(b"abc");
    assert!(matches!(
        s.upload_commit(&id, &wrong).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    assert_eq!(s.stat(&d_abc).await.unwrap(), None);
}

/// An interrupted chunk: the upload reports what it holds and can be resumed.
pub async fn an_interrupted_chunk_resumes(a: &impl Adapter) {
    let s = a.blobs().await;
    let d_abc = Digest::sha256_of(b"abc");
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    assert!(s.upload_append(&id, 0, failing_stream(b"abc")).await.is_err());
    let size = s.upload_size(&id).await.unwrap();
    assert!(size <= 3);
    s.upload_append(&id, size, stream(&b"abc"[size as usize..]))
        .await
        .unwrap();
    s.upload_commit(&id, &d_abc).await.unwrap();
    assert_eq!(read_all(&*s, &d_abc, None).await, b"abc");
}

/// A sha512 digest through an upload.
pub async fn sha512_upload(a: &impl Adapter) {
    let s = a.blobs().await;
    let d512 = sha512_of_five();
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    s.upload_append(&id, 0, stream(b"five!")).await.unwrap();
    s.upload_commit(&id, &d512).await.unwrap();
}

/// Abort is idempotent; unknown uploads are not found.
pub async fn abort_and_unknown_uploads(a: &impl Adapter) {
    let s = a.blobs().await;
    let d = Digest::sha256_of(&data());
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    s.upload_abort(&id).await.unwrap();
    s.upload_abort(&id).await.unwrap();
    assert!(matches!(s.upload_size(&id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.upload_append(&id, 0, stream(b"x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.upload_commit(&id, &d).await.is_err());
}

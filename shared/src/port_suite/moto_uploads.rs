//! Chunked uploads on S3 (against the moto server of [`super::moto`]): what they cost in bytes
//! sent to S3, and the cases only the S3 adapter has (multipart parts, small tails, copies).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use bytes::Bytes;
use futures::StreamExt;

use crate::adapters::s3_blobs::S3BlobStore;
use crate::domain::{Digest, Hasher};
use crate::ports::{BlobStore, ByteStream, StoreError};

use super::moto::{config, keys, open_multipart_uploads, raw_s3, unique};

const MIB: usize = 1024 * 1024;

/// Counts the bytes of every request body the S3 client sends (each attempt, so retries count).
#[derive(Debug, Clone, Default)]
struct BodyBytes(Arc<AtomicU64>);

impl BodyBytes {
    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::SeqCst)
    }
}

impl Intercept for BodyBytes {
    fn name(&self) -> &'static str {
        "BodyBytes"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        // the payload's own length when the SDK frames it (aws-chunked), else the body's
        let header = |name| req.headers().get(name).and_then(|v: &str| v.parse::<u64>().ok());
        let n = header("x-amz-decoded-content-length")
            .or_else(|| header("content-length"))
            .or_else(|| req.body().content_length())
            .unwrap_or(0);
        self.0.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }
}

/// A store on a bucket of its own (default part size) whose requests' body bytes are counted.
async fn counted_blobs() -> (S3BlobStore, BodyBytes) {
    let conf = config().await;
    let sent = BodyBytes::default();
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .interceptor(sent.clone())
            .build(),
    );
    let s = S3BlobStore::from_client(client, unique("bucket"));
    assert!(s.create_bucket_if_missing().await.unwrap());
    sent.take();
    (s, sent)
}

/// `n` bytes of xorshift noise.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// `b` as a body in chunks of 1 MiB, as a client's request body arrives.
fn body(b: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, io::Error>> = b.chunks(MIB).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// Appends `pieces` one after the other; returns the upload's size.
async fn append_all(s: &S3BlobStore, id: &str, pieces: &[&[u8]]) -> u64 {
    let mut off = 0;
    for p in pieces {
        off = s.upload_append(id, off, body(p)).await.unwrap();
        assert_eq!(s.upload_size(id).await.unwrap(), off);
    }
    off
}

/// The digest of the blob's bytes as S3 serves them.
async fn digest_read_back(s: &S3BlobStore, d: &Digest) -> Digest {
    let mut reader = s.open(d, None).await.unwrap();
    let mut h = Hasher::new(d.algorithm());
    while let Some(chunk) = reader.body.next().await {
        h.update(&chunk.unwrap());
    }
    h.finish()
}

/// The upload left nothing behind: no staged object, no open multipart upload.
async fn nothing_left(s: &S3BlobStore, id: &str) {
    let s3 = raw_s3(&config().await);
    assert_eq!(
        keys(&s3, s.bucket(), &format!("uploads/{id}/")).await,
        Vec::<String>::new()
    );
    assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);
}

/// A 100 MiB chunked push (three appends of 33 MiB, one of 1 MiB, and the final PUT's empty
/// one) sends each byte to S3 once: the bytes sent in request bodies, from the upload's
/// creation through its commit, are 100 MiB plus at most 1 MiB (the upload's state objects, a
/// few hundred bytes each; the tail of the last append becomes the last part by a server-side
/// copy, and the blob reaches its key by one). A push in one PATCH sends its bytes once too.
/// The blob reads back hash-correct; a mismatching commit publishes nothing and leaves no
/// multipart upload open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_push_writes_its_bytes_once() {
    let (s, sent) = counted_blobs().await;
    let data = noise(100 * MIB, 7);
    let d = Digest::sha256_of(&data);

    // Given an upload in four appends and the final PUT's empty one
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    let size = append_all(
        &s,
        &id,
        &[
            &data[..33 * MIB],
            &data[33 * MIB..66 * MIB],
            &data[66 * MIB..99 * MIB],
            &data[99 * MIB..],
        ],
    )
    .await;
    assert_eq!(s.upload_append(&id, size, body(b"")).await.unwrap(), size);
    // When it is committed
    assert_eq!(s.upload_commit(&id, &d).await.unwrap(), data.len() as u64);
    // Then its bytes were sent once
    let written = sent.take();
    eprintln!(
        "a 100 MiB push in 4 appends sent {written} bytes ({:.2} MiB)",
        written as f64 / MIB as f64
    );
    let (least, most) = (100 * MIB as u64, 101 * MIB as u64);
    assert!(
        (least..=most).contains(&written),
        "{written} bytes sent for a 100 MiB push"
    );
    assert_eq!(s.stat(&d).await.unwrap(), Some(data.len() as u64));
    assert_eq!(digest_read_back(&s, &d).await, d);
    nothing_left(&s, &id).await;

    // a push in one PATCH
    let one = noise(20 * MIB + 5, 11);
    let d_one = Digest::sha256_of(&one);
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    append_all(&s, &id, &[&one]).await;
    s.upload_commit(&id, &d_one).await.unwrap();
    let written = sent.take();
    eprintln!("a 20 MiB push in one append sent {written} bytes");
    assert!(
        (one.len() as u64..=one.len() as u64 + MIB as u64).contains(&written),
        "{written} bytes sent for a 20 MiB push"
    );
    assert_eq!(digest_read_back(&s, &d_one).await, d_one);
    nothing_left(&s, &id).await;

    // a mismatch, with parts and a tail staged: nothing published, nothing left
    let wrong = Digest::sha256_of(b"not these bytes");
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    append_all(&s, &id, &[&data[..7 * MIB], &data[7 * MIB..8 * MIB]]).await;
    assert!(matches!(
        s.upload_commit(&id, &wrong).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    assert_eq!(s.stat(&Digest::sha256_of(&data[..8 * MIB])).await.unwrap(), None);
    let s3 = raw_s3(&config().await);
    let mut blobs = keys(&s3, s.bucket(), "blobs/").await;
    blobs.sort();
    let mut expected = vec![
        format!("blobs/sha256/{}", d.hex()),
        format!("blobs/sha256/{}", d_one.hex()),
    ];
    expected.sort();
    assert_eq!(blobs, expected);
    nothing_left(&s, &id).await;
    assert!(matches!(s.upload_size(&id).await, Err(StoreError::NotFound)));
}

/// `b` as a body whose client goes away after it.
fn cut_body(b: &[u8]) -> ByteStream {
    let mut chunks: Vec<Result<Bytes, io::Error>> = b.chunks(MIB).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    chunks.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
    Box::pin(futures::stream::iter(chunks))
}

/// What only the S3 uploads have: small appends whose tails are sent again (within the
/// bound), a body that fails midway with parts sent, sha512 commits (read back, not written
/// again), an empty upload, a multipart copy, and aborts with parts and a tail staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_on_s3() {
    let (s, sent) = counted_blobs().await;
    // objects over 6 MiB are copied in parts of 5 MiB
    let s = s.with_copy_limits(6 * MIB as u64, 5 * MIB as u64);
    let data = noise(9 * MIB + 2048, 3);
    let d = Digest::sha256_of(&data);

    // appends under 5 MiB: each sends the tail before it again, until one makes a part
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    append_all(
        &s,
        &id,
        &[
            &data[..MIB],
            &data[MIB..2 * MIB],
            &data[2 * MIB..3 * MIB],
            &data[3 * MIB..9 * MIB],
            &data[9 * MIB..],
        ],
    )
    .await;
    assert!(matches!(
        s.upload_append(&id, 5, body(b"x")).await,
        Err(StoreError::OutOfOrder { size }) if size == data.len() as u64
    ));
    s.upload_commit(&id, &d).await.unwrap();
    // 1 + 2 + 3 MiB of tails, a part of 9 MiB, the last 2 KiB, and the states
    let written = sent.take();
    let least = (15 * MIB + 2048) as u64;
    assert!(
        (least..least + 64 * 1024).contains(&written),
        "{written} bytes sent for small appends"
    );
    assert_eq!(digest_read_back(&s, &d).await, d);
    nothing_left(&s, &id).await;

    // a body that fails after 12 MiB keeps them; the upload resumes from there
    let big = noise(20 * MIB + 17, 5);
    let d_big = Digest::sha256_of(&big);
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    assert!(matches!(
        s.upload_append(&id, 0, cut_body(&big[..12 * MIB])).await,
        Err(StoreError::Body(_))
    ));
    assert_eq!(s.upload_size(&id).await.unwrap(), 12 * MIB as u64);
    // one that fails before its first byte changes nothing
    assert!(s.upload_append(&id, 12 * MIB as u64, cut_body(b"")).await.is_err());
    assert_eq!(s.upload_size(&id).await.unwrap(), 12 * MIB as u64);
    let size = s
        .upload_append(&id, 12 * MIB as u64, body(&big[12 * MIB..]))
        .await
        .unwrap();
    assert_eq!(size, big.len() as u64);
    sent.take();
    // over the copy limit: the blob is copied in parts, no bytes sent
    assert_eq!(s.upload_commit(&id, &d_big).await.unwrap(), big.len() as u64);
    assert!(sent.take() < 64 * 1024, "a commit sends no blob bytes");
    assert_eq!(digest_read_back(&s, &d_big).await, d_big);
    nothing_left(&s, &id).await;

    // sha512, with parts and a tail: read back once, copied on a match only
    let sha512 = |b: &[u8]| {
        let mut h = Hasher::new(crate::domain::Algorithm::Sha512);
        h.update(b);
        h.finish()
    };
    let d512 = sha512(&data);
    for (digest, ok) in [(sha512(b"other bytes"), false), (d512.clone(), true)] {
        let id = uuid::Uuid::new_v4().to_string();
        s.upload_create(&id).await.unwrap();
        append_all(&s, &id, &[&data[..6 * MIB], &data[6 * MIB..]]).await;
        let result = s.upload_commit(&id, &digest).await;
        if ok {
            assert_eq!(result.unwrap(), data.len() as u64);
            assert_eq!(digest_read_back(&s, &digest).await, digest);
        } else {
            assert!(matches!(result, Err(StoreError::DigestMismatch { .. })));
            assert_eq!(s.stat(&digest).await.unwrap(), None);
        }
        nothing_left(&s, &id).await;
    }

    // an empty upload
    let empty = Digest::sha256_of(b"");
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    assert_eq!(s.upload_append(&id, 0, body(b"")).await.unwrap(), 0);
    assert_eq!(s.upload_commit(&id, &empty).await.unwrap(), 0);
    assert_eq!(s.stat(&empty).await.unwrap(), Some(0));
    nothing_left(&s, &id).await;

    // an abort with a part and a tail staged, twice
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    append_all(&s, &id, &[&data[..6 * MIB], &data[6 * MIB..7 * MIB]]).await;
    s.upload_abort(&id).await.unwrap();
    s.upload_abort(&id).await.unwrap();
    assert!(matches!(s.upload_size(&id).await, Err(StoreError::NotFound)));
    nothing_left(&s, &id).await;
}

//! Every port case on S3 and DynamoDB, against a moto server at `BERTH_TEST_MOTO` (`./test.sh`
//! starts one), and the tests of the S3 blob store and the SQS job queue that only they have.
//! Every case makes a table, bucket and queue of its own, with unique names, so cases run in
//! parallel on the one server.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::{port_cases, read_all, Adapter};
use crate::adapters::dynamo_table::DynamoTable;
use crate::adapters::s3_blobs::S3BlobStore;
use crate::domain::Digest;
use crate::ports::{BlobStore, ByteRange, ByteStream, StoreError, Table};

/// The moto endpoint, or a failure saying how to start one: these tests never pass
/// silently without it.
pub fn endpoint() -> String {
    match std::env::var("BERTH_TEST_MOTO") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "BERTH_TEST_MOTO is not set: the `moto` feature runs the AWS adapter suites against a moto \
             server. Start one and point the tests at it:\n  \
             python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]'\n  \
             /tmp/moto/bin/moto_server -H 127.0.0.1 -p 5055 &\n  \
             BERTH_TEST_MOTO=http://127.0.0.1:5055 cargo test -p berth-shared --features moto\n\
             (./test.sh does all of this)"
        ),
    }
}

/// Dummy credentials on the SDK config itself; nothing global is changed.
pub async fn config() -> aws_config::SdkConfig {
    crate::adapters::aws::sdk_config_for(&endpoint(), "us-east-1", "testing", "testing").await
}

/// A name no other test uses.
pub fn unique(kind: &str) -> String {
    format!("berth-test-{kind}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A fresh table of its own.
pub async fn table() -> DynamoTable {
    let t = DynamoTable::new(&config().await, unique("table"));
    assert!(t.create_if_missing().await.unwrap());
    assert!(!t.create_if_missing().await.unwrap(), "a second call finds the table");
    t
}

/// A bucket store writing 5 MiB parts, so multipart writes are tested with little data.
pub async fn blobs() -> S3BlobStore {
    let s = S3BlobStore::new(&config().await, unique("bucket"), true).with_part_size(0);
    assert!(s.create_bucket_if_missing().await.unwrap());
    assert!(
        !s.create_bucket_if_missing().await.unwrap(),
        "a second call finds the bucket"
    );
    s
}

pub(super) fn raw_s3(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(conf).force_path_style(true).build())
}

pub(super) async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

pub(super) async fn open_multipart_uploads(s3: &aws_sdk_s3::Client, bucket: &str) -> usize {
    let out = s3.list_multipart_uploads().bucket(bucket).send().await.unwrap();
    out.uploads().len()
}

/// A table and a bucket of their own, made on first use.
struct Moto {
    table: OnceCell<Arc<DynamoTable>>,
    blobs: OnceCell<Arc<S3BlobStore>>,
}

impl Adapter for Moto {
    /// Every table call is an HTTP round trip to the emulator.
    const SLOW: u32 = 20;
    /// Fewer: the emulator takes over 10 ms a call. What the page cases check of the adapter
    /// (a query reads up to its limit, from where it is asked to start) holds at any length.
    const MANY: usize = 200;

    async fn new() -> Self {
        Moto {
            table: OnceCell::new(),
            blobs: OnceCell::new(),
        }
    }
    async fn table(&self) -> Arc<dyn Table> {
        self.table
            .get_or_init(|| async { Arc::new(table().await) })
            .await
            .clone()
    }
    async fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs
            .get_or_init(|| async { Arc::new(blobs().await) })
            .await
            .clone()
    }
}

// no `job` suite: with these adapters jobs go through SQS, which has its own tests below
port_cases!(Moto;);

/// Bodies over one part go through a multipart upload of the final key, completed only
/// when the digest matches; chunked uploads of any chunk sizes commit too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs() {
    let conf = config().await;
    let s = blobs().await;
    let s3 = raw_s3(&conf);
    let part = 5 * 1024 * 1024;
    let data: Vec<u8> = (0..2 * part + 123).map(|i| (i % 241) as u8).collect();
    let d = Digest::sha256_of(&data);
    let chunks = |b: &[u8]| -> Vec<Result<Bytes, io::Error>> {
        b.chunks(1 << 20).map(|c| Ok(Bytes::copy_from_slice(c))).collect()
    };
    let big = |b: &[u8]| -> ByteStream { Box::pin(futures::stream::iter(chunks(b))) };

    // a mismatch after two parts were sent: nothing visible, the multipart upload aborted
    let wrong = Digest::sha256_of(b"not these bytes");
    assert!(matches!(
        s.put(&wrong, big(&data)).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);
    // a client that goes away midway: the same
    let mut cut = chunks(&data[..part + 10]);
    cut.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
    assert!(matches!(
        s.put(&d, Box::pin(futures::stream::iter(cut))).await,
        Err(StoreError::Body(_))
    ));
    assert_eq!(s.stat(&d).await.unwrap(), None);
    assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);

    assert_eq!(s.put(&d, big(&data)).await.unwrap(), data.len() as u64);
    assert_eq!(s.stat(&d).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(&s, &d, None).await, data);
    let across = ByteRange {
        start: part as u64 - 5,
        end: part as u64 + 5,
    };
    assert_eq!(read_all(&s, &d, Some(across)).await, &data[part - 5..=part + 5]);

    // a chunked upload: a chunk larger than a part, then small ones
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    let mut off = 0u64;
    for c in [&data[..part + 7], &data[part + 7..part + 100], &data[part + 100..]] {
        off = s.upload_append(&id, off, big(c)).await.unwrap();
    }
    assert_eq!(s.upload_size(&id).await.unwrap(), data.len() as u64);
    s.delete(&d).await.unwrap();
    assert_eq!(s.upload_commit(&id, &d).await.unwrap(), data.len() as u64);
    assert_eq!(read_all(&s, &d, None).await, data);
    assert!(keys(&s3, s.bucket(), &format!("uploads/{id}/")).await.is_empty());
    assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);

    // the presigned URL serves the bytes
    let url = s
        .redirect_url(&d, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("S3 redirects");
    let got = reqwest::get(&url).await.unwrap();
    assert!(got.status().is_success(), "{}", got.status());
    assert_eq!(got.bytes().await.unwrap(), data);
}

/// The SQS job queue's cases (`sqs.rs`), on moto's SQS and DynamoDB.
mod sqs {
    use super::*;
    use crate::port_suite::sqs;

    async fn client() -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&config().await)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs() {
        sqs::jobs(&client().await, Arc::new(table().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_dedupes() {
        sqs::fifo_dedupes(&client().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn poison_is_dropped() {
        sqs::poison_is_dropped(&client().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_job_waits_out_its_backoff() {
        sqs::a_retried_job_waits_out_its_backoff(&client().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_job_is_not_delivered_twice() {
        sqs::a_running_job_is_not_delivered_twice(&client().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receive_waits_for_a_message() {
        sqs::a_receive_waits_for_a_message(&client().await).await;
    }
}

//! Every port case on S3 and DynamoDB, against a moto server at `BERTH_TEST_MOTO` (`./test.sh`
//! starts one), and the tests of the S3 blob store and the SQS job queue that only they have.
//! Every case makes a table, bucket and queue of its own, with unique names, so cases run in
//! parallel on the one server.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::adapters::dynamo_table::DynamoTable;
use crate::adapters::s3_blobs::S3BlobStore;
use crate::adapters::sqs_queue::{create_queues_if_missing, Outcome, QueueSpec, SqsJobQueue, SqsPoller};
use crate::domain::Digest;
use crate::ports::{BlobStore, ByteRange, ByteStream, Job, JobError, JobHandler, JobQueue, StoreError, Table};
use crate::store::{Repository, RepositoryKind, Store};

use super::job::{job, wait_for_version, VersionJob};
use super::{port_cases, read_all, Adapter};

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

/// Records each delivery's attempt number and always asks to be retried.
struct Never(Mutex<Vec<u32>>);

#[async_trait]
impl JobHandler for Never {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.0.lock().unwrap().push(job.attempts);
        Err(JobError::Retry("always".into()))
    }
}

/// Polls until `done` says so, at most `rounds` receives; returns the outcomes seen.
async fn poll_until(
    p: &SqsPoller,
    h: &dyn JobHandler,
    rounds: usize,
    done: impl Fn(&[Outcome]) -> bool,
) -> Vec<Outcome> {
    let mut seen = Vec::new();
    for _ in 0..rounds {
        seen.extend(p.poll_once(h).await.unwrap());
        if done(&seen) {
            return seen;
        }
    }
    panic!("the queue did not get there in {rounds} receives: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs() {
    let conf = config().await;
    let store = Store::new(Arc::new(table().await));
    let repo = Repository::new("jobs/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let spec = QueueSpec {
        max_receive_count: 2,
        visibility_timeout: Duration::from_secs(30),
        ..QueueSpec::new(unique("jobs"))
    };
    let queues = create_queues_if_missing(&sqs, &spec).await.unwrap();
    let again = create_queues_if_missing(&sqs, &spec).await.unwrap();
    assert_eq!(
        (again.url.as_str(), again.dlq_url.as_str()),
        (queues.url.as_str(), queues.dlq_url.as_str())
    );
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    // retries come back at once
    let poller = SqsPoller::new(sqs.clone(), &queues.url)
        .wait_time(Duration::from_secs(1))
        .backoff(Duration::ZERO, Duration::ZERO);

    // a job that fails once is delivered again and makes one version
    let h = VersionJob::new(&store, repo.id, 1);
    q.enqueue(job("j1", 1)).await.unwrap();
    let seen = poll_until(&poller, &h, 10, |s| s.contains(&Outcome::Deleted)).await;
    assert_eq!(seen, [Outcome::Retried, Outcome::Deleted]);
    assert_eq!(h.runs.load(Ordering::SeqCst), 2);
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

    // invariant 4: a redelivered finished job makes no second version
    q.enqueue(job("j1", 1)).await.unwrap();
    poll_until(&poller, &h, 10, |s| s.contains(&Outcome::Deleted)).await;
    assert_eq!(h.runs.load(Ordering::SeqCst), 3);
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

    // a job that always fails is moved to the dead-letter queue after maxReceiveCount
    let never = Never(Mutex::new(Vec::new()));
    q.enqueue(job("doomed", 0)).await.unwrap();
    for _ in 0..10 {
        if poller.poll_once(&never).await.unwrap().is_empty() {
            break;
        }
    }
    assert_eq!(*never.0.lock().unwrap(), [0, 1], "attempts count the deliveries before");
    assert!(poller.poll_once(&never).await.unwrap().is_empty());
    let dead = sqs
        .receive_message()
        .queue_url(&queues.dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let dead = dead.messages();
    assert_eq!(dead.len(), 1);
    let dead_job: Job = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(dead_job.id, "doomed");

    // running pollers pick up new jobs by themselves, and stop when told
    let h2 = Arc::new(VersionJob::new(&store, repo.id, 0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = poller.start(h2, 2, stop_rx);
    q.enqueue(job("j3", 3)).await.unwrap();
    wait_for_version(&store, repo.id, 2, Duration::from_millis(50)).await;
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 2);
    stop_tx.send(true).unwrap();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(5), w).await.unwrap().unwrap();
    }
}

/// On a FIFO queue the job id deduplicates: a pending id enqueued again is one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_dedupes() {
    let conf = config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queues = create_queues_if_missing(&sqs, &QueueSpec::new(format!("{}.fifo", unique("fifo"))))
        .await
        .unwrap();
    assert!(queues.dlq_url.ends_with("-dlq.fifo"));
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    q.enqueue(job("same", 1)).await.unwrap();
    q.enqueue(job("same", 1)).await.unwrap();
    let poller = SqsPoller::new(sqs, &queues.url)
        .wait_time(Duration::from_secs(1))
        .batch(10);
    struct Ok_;
    #[async_trait]
    impl JobHandler for Ok_ {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            Ok(())
        }
    }
    assert_eq!(poller.poll_once(&Ok_).await.unwrap(), [Outcome::Deleted]);
    assert!(poller.poll_once(&Ok_).await.unwrap().is_empty());
}

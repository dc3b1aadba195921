//! The blob store cases and the SQS cases again, on LocalStack's S3 and SQS at
//! `BERTH_TEST_LOCALSTACK`, with DynamoDB (where a case needs a table) on the moto server at
//! `BERTH_TEST_MOTO`; and the tests of presigned blob URLs that only LocalStack makes
//! meaningful: it checks a presigned URL's signature, method and expiry as S3 does, which moto
//! never does. Built with the `localstack` feature (`./test.sh` turns it on when it could start
//! LocalStack); every case makes a bucket and queues of its own.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tokio::sync::OnceCell;

use crate::adapters::dynamo_table::DynamoTable;
use crate::adapters::s3_blobs::S3BlobStore;
use crate::domain::Digest;
use crate::ports::{BlobStore, Table};

use super::moto::unique;
use super::{stream, tests_for, Adapter};

/// The LocalStack endpoint, or a failure saying how to start one: these tests never pass
/// silently without it.
pub fn endpoint() -> String {
    match std::env::var("BERTH_TEST_LOCALSTACK") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "BERTH_TEST_LOCALSTACK is not set: the `localstack` feature runs the S3 and SQS suites against \
             LocalStack (with DynamoDB on moto at BERTH_TEST_MOTO). Start one (it needs Python 3.13) and point \
             the tests at it:\n  \
             python3.13 -m venv /tmp/ls && /tmp/ls/bin/pip install 'localstack-core[runtime]' 'cbor2<6' \
             'pyOpenSSL==25.3.0' 'service_identity<26'\n  \
             GATEWAY_LISTEN=127.0.0.1:4566 GATEWAY_SERVER=hypercorn SERVICES=s3,sqs DNS_ADDRESS=0 \
             S3_SKIP_SIGNATURE_VALIDATION=0 /tmp/ls/bin/python -m localstack.runtime.main &\n  \
             BERTH_TEST_LOCALSTACK=http://127.0.0.1:4566 BERTH_TEST_MOTO=… cargo test -p berth-shared \
             --features localstack port_suite::localstack\n\
             (./test.sh does all of this)"
        ),
    }
}

/// LocalStack checks presigned URLs of access keys it does not know against the secret `test`.
const KEY: &str = "test";

/// One SDK configuration with an endpoint per service, as `AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL_SQS` and `AWS_ENDPOINT_URL_DYNAMODB` give a deployment: S3 and SQS at
/// LocalStack, DynamoDB at moto. The endpoints come from a profile's `services` section, which
/// the SDK reads as it reads those variables, without changing the process's environment (a
/// global `AWS_ENDPOINT_URL` there would win over it; `presigned_urls_are_checked` would see).
pub async fn config() -> SdkConfig {
    #[allow(deprecated)] // aws-config's names for aws-runtime's types, which Berth does not depend on
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let (ls, moto) = (endpoint(), super::moto::endpoint());
    let profile = format!(
        "[profile berth-test]\nservices = berth-test\n\
         [services berth-test]\n\
         s3 =\n  endpoint_url = {ls}\n\
         sqs =\n  endpoint_url = {ls}\n\
         dynamodb =\n  endpoint_url = {moto}\n"
    );
    #[allow(deprecated)]
    let files = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Config, profile)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .profile_files(files)
        .profile_name("berth-test")
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(KEY, KEY, None, None, "berth-static"))
        .load()
        .await
}

/// A fresh bucket of its own, with 5 MiB parts, addressed in the path (LocalStack's host names
/// for buckets need its DNS server).
pub async fn blobs() -> S3BlobStore {
    let s = S3BlobStore::new(&config().await, unique("bucket"), true).with_part_size(0);
    assert!(s.create_bucket_if_missing().await.unwrap());
    assert!(
        !s.create_bucket_if_missing().await.unwrap(),
        "a second call finds the bucket"
    );
    s
}

/// A bucket of its own on LocalStack; the table, which no blob case uses, on moto.
struct LocalStack {
    table: OnceCell<Arc<DynamoTable>>,
    blobs: OnceCell<Arc<S3BlobStore>>,
}

impl Adapter for LocalStack {
    const SLOW: u32 = 20;

    async fn new() -> Self {
        LocalStack {
            table: OnceCell::new(),
            blobs: OnceCell::new(),
        }
    }
    async fn table(&self) -> Arc<dyn Table> {
        self.table
            .get_or_init(|| async { Arc::new(super::moto::table().await) })
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

/// The blob cases of [`super::port_cases!`], and their names for the test that keeps the two
/// lists the same.
macro_rules! blob_cases {
    ($($case:ident),+ $(,)?) => {
        tests_for!(LocalStack; blob: $($case),+;);
        const BLOB_CASES: &[&str] = &[$(stringify!($case)),+];
    };
}
blob_cases!(
    verified_before_visible,
    put_read_and_delete,
    sha512_and_empty_blobs,
    chunked_upload,
    a_mismatching_commit_publishes_nothing,
    an_interrupted_chunk_resumes,
    sha512_upload,
    abort_and_unknown_uploads,
);

/// Every blob case of the one list in `port_suite/mod.rs` runs here too.
#[test]
fn every_blob_case_runs_on_localstack() {
    let list = include_str!("mod.rs");
    let start = list.find("blob: ").expect("the blob cases in port_cases!") + "blob: ".len();
    let end = start + list[start..].find(';').unwrap();
    let cases: Vec<&str> = list[start..end].split(',').map(str::trim).collect();
    assert_eq!(
        cases, BLOB_CASES,
        "the blob cases of port_cases! and of blob_cases! above"
    );
}

/// The SQS cases, on LocalStack's SQS (and moto's DynamoDB for the version-making jobs).
mod sqs {
    use super::*;
    use crate::port_suite::sqs;

    async fn client() -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&config().await)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs() {
        let table = DynamoTable::new(&config().await, unique("table"));
        table.create_if_missing().await.unwrap();
        sqs::jobs(&client().await, Arc::new(table)).await;
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

/// A blob of `n` bytes that are not all alike, stored in a fresh bucket.
async fn stored(n: u32) -> (S3BlobStore, Digest, Vec<u8>) {
    let s = blobs().await;
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);
    s.put(&d, stream(&data)).await.unwrap();
    (s, d, data)
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

/// A presigned blob URL serves the blob, whole or by range, to a plain GET without
/// credentials; a changed signature, another key, another method or a late GET is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_are_checked() {
    let (s, d, data) = stored(100_000).await;
    let http = reqwest::Client::new();
    let url = s
        .redirect_url(&d, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("S3 redirects");
    assert!(url.starts_with(&endpoint()), "{url}");

    // the URL as Berth answers it: the bytes, and a range of them (a client's Range header
    // goes along with the redirect)
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    assert_eq!(r.bytes().await.unwrap(), data);
    let r = http.get(&url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().await.unwrap(), &data[10..20]);

    // a changed signature
    let (head, sig) = url.split_once("X-Amz-Signature=").unwrap();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    let tampered = format!("{head}X-Amz-Signature={flipped}{}", &sig[1..]);
    assert_eq!(status(http.get(&tampered)).await, 403, "{tampered}");
    // the signature of one blob on another
    let other = Digest::sha256_of(b"another blob");
    s.put(&other, stream(b"another blob")).await.unwrap();
    let moved = url.replace(d.hex(), other.hex());
    assert_ne!(moved, url);
    assert_eq!(status(http.get(&moved)).await, 403, "{moved}");
    // HEAD on a URL signed for GET (Berth answers blob HEADs itself, never with a redirect)
    assert_eq!(status(http.head(&url)).await, 403);

    // a URL whose lifetime is over
    let short = s.redirect_url(&d, Duration::from_secs(1)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(http.get(&short)).await, 403, "{short}");
    // and the long one still works
    assert_eq!(status(http.get(&url)).await, 200);
}

/// A store presigning for a public endpoint (clients reach LocalStack as `localhost`, Berth as
/// `127.0.0.1`) answers URLs naming that endpoint, signed for it: LocalStack serves them there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoint_urls_are_signed_for_it() {
    let (s, d, data) = stored(1000).await;
    let mut public = url::Url::parse(&endpoint()).unwrap();
    let other = if public.host_str() == Some("localhost") {
        "127.0.0.1"
    } else {
        "localhost"
    };
    public.set_host(Some(other)).unwrap();
    let public = public.as_str().trim_end_matches('/').to_owned();
    let s = s.with_public_endpoint(&public);

    let url = s.redirect_url(&d, Duration::from_secs(60)).await.unwrap().unwrap();
    assert!(url.starts_with(&format!("{public}/{}/", s.bucket())), "{url}");
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    assert_eq!(r.bytes().await.unwrap(), data);
    // the same URL sent to the other address: signed for another host
    let elsewhere = url.replacen(&public, &endpoint(), 1);
    assert_eq!(status(reqwest::Client::new().get(&elsewhere)).await, 403, "{elsewhere}");
}

/// A new bucket blocks public access, encrypts by default and carries the two lifecycle rules
/// (the store only logs a warning when S3 refuses one, so this reads them back; LocalStack
/// checks their shape as S3 does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bucket_is_private_and_cleans_up_after_itself() {
    let s = blobs().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config().await)
            .force_path_style(true)
            .build(),
    );
    let block = s3.get_public_access_block().bucket(s.bucket()).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let sse = s3.get_bucket_encryption().bucket(s.bucket()).send().await.unwrap();
    let rule = &sse.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.sse_algorithm().as_str(), "AES256");
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(s.bucket())
        .send()
        .await
        .unwrap();
    let rules: Vec<_> = lifecycle
        .rules()
        .iter()
        .map(|r| {
            (
                r.id().unwrap_or_default().to_owned(),
                r.filter().and_then(|f| f.prefix()).unwrap_or_default().to_owned(),
                r.abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation()),
                r.expiration().and_then(|e| e.days()),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                "abort-incomplete-multipart-uploads".to_owned(),
                String::new(),
                Some(1),
                None
            ),
            (
                "expire-stale-chunk-uploads".to_owned(),
                "uploads/".to_owned(),
                None,
                Some(7)
            ),
        ]
    );
}

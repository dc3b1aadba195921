//! The moto server the AWS tests run against (`BERTH_TEST_MOTO`), and fresh resource names
//! on it, so tests sharing one server never meet.

use berth::app::{AwsQueue, AwsSettings};

/// The moto server's URL, or a panic saying how to start one (the tests must not pass
/// silently without it).
pub fn endpoint() -> String {
    match std::env::var("BERTH_TEST_MOTO") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "BERTH_TEST_MOTO is not set: these tests run Berth on S3/DynamoDB/SQS against a moto server. \
             Start one (`python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]' && \
             /tmp/moto/bin/moto_server -H 127.0.0.1 -p 5055 &`) and set \
             BERTH_TEST_MOTO=http://127.0.0.1:5055 (./test.sh does all of this)"
        ),
    }
}

/// A name no other test uses: `berth-test-<kind>-<12 hex digits>`.
pub fn unique(kind: &str) -> String {
    format!("berth-test-{kind}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A fresh bucket, table and queue, created at start.
pub fn settings(path_style: bool) -> AwsSettings {
    AwsSettings {
        bucket: unique("bucket"),
        table: unique("table"),
        queue: AwsQueue::Name(unique("queue")),
        s3_path_style: path_style,
        init: true,
    }
}

//! Port implementations.
//!
//! - [`memory`]: in-memory table and blob store, for fast tests (never the only test of a
//!   port: the same suites run on the embedded adapters).
//! - [`fs`]: content-addressed files under a data directory (embedded blob store).
//! - [`redb_table`]: the table port on redb (embedded metadata).
//! - [`upstream_http`]: the upstream port on reqwest (syncs and on-demand pulls).
//! - with the `aws` feature: [`s3_blobs`] (blob store on S3), [`dynamo_table`] (table port on
//!   DynamoDB) and [`sqs_queue`] (job queue on SQS, and a poller that runs its jobs), sharing
//!   the SDK configuration and error mapping of [`aws`].
//!
//! Layering: adapters implement `ports` and know nothing of services or HTTP.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamo_table;
#[cfg(feature = "local")]
pub mod fs;
pub mod memory;
#[cfg(feature = "local")]
pub mod redb_table;
#[cfg(feature = "aws")]
pub mod s3_blobs;
#[cfg(feature = "aws")]
pub mod sqs_queue;
#[cfg(feature = "upstream")]
pub mod upstream_http;

use futures::StreamExt;

use crate::ports::{ByteStream, StoreError};

/// Reads a whole stream into memory (only for the in-memory adapter and small bodies).
pub(crate) async fn collect(mut body: ByteStream) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(|e| StoreError::Body(Box::new(e)))?);
    }
    Ok(out)
}

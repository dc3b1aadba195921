//! Port implementations.
//!
//! - [`memory`]: in-memory table and blob store, for fast tests (never the only test of a
//!   port: the same suites run on the embedded adapters).
//! - [`fs`]: content-addressed files under a data directory (embedded blob store).
//! - [`redb_table`]: the table port on redb (embedded metadata).
//! - [`local_jobs`]: the job queue port over the table port, with the in-process runner that
//!   works it (the local binary's queue; jobs survive a restart).
//! - [`upstream_http`]: the upstream port on reqwest (syncs and on-demand pulls).
//! - with the `aws` feature: [`s3_blobs`] (blob store on S3), [`dynamo_table`] (table port on
//!   DynamoDB) and [`sqs_queue`] (job queue on SQS, and a poller that runs its jobs), sharing
//!   the SDK configuration and error mapping of [`aws`].
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! adapters implement `ports` and know nothing of the store, services or HTTP.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamo_table;
#[cfg(feature = "local")]
pub mod fs;
pub mod local_jobs;
pub mod memory;
#[cfg(feature = "local")]
pub mod redb_table;
#[cfg(feature = "aws")]
pub mod s3_blobs;
#[cfg(feature = "aws")]
pub mod sqs_queue;
#[cfg(feature = "upstream")]
pub mod upstream_http;

//! Ports: the small traits every storage backend implements, and their one error type.
//!
//! Layering: ports depend on `domain` only. Adapters implement them; `store` and `services`
//! use them through `Arc<dyn …>`.
//!
//! - [`BlobStore`]: content-addressed bytes and upload staging (files, memory, S3).
//! - [`Table`]: an ordered key-value table of items addressed by partition and sort key, with
//!   one conditional write per call (redb, memory, DynamoDB). Berth's data model is written
//!   once over it (see `store`).
//! - [`JobQueue`]: where background jobs are sent (in-process runner, SQS); the job kinds
//!   and the retry policy every consumer follows.
//! - [`LeaseTimings`]: how long every lease lasts and how often it is renewed.
//! - [`Upstream`]: an upstream registry repository a remote names (reqwest; fakes in tests).

mod blob;
pub mod durability;
mod error;
mod jobs;
mod lease;
mod table;
mod upstream;

pub use blob::{collect, BlobReader, BlobStore, ByteRange, ByteStream};
pub use durability::write_scope;
pub use error::StoreError;
pub use jobs::{
    attempts_from_receives, CacheBlobJob, Job, JobError, JobHandler, JobKind, JobQueue, OrphanJob, Poison, QueueDepth,
    RepairJob, RetryPolicy, ScheduleTick, SyncJob, Verdict,
};
pub use lease::LeaseTimings;
pub use table::{
    check_cond, check_transact, expired, first_rev, next_rev, query_matches, unix_now, Cond, Query, Row, Table, Write,
    WriteOp, MAX_TRANSACT,
};
pub use upstream::{
    pem_blocks, AtomicSignature, ManifestHead, PemBlock, TagPage, TlsMaterial, TlsSettingError, Upstream, UpstreamBlob,
    UpstreamConfig, UpstreamError, UpstreamFactory, UpstreamManifest, UpstreamProxy, UpstreamTls, MANIFEST_ACCEPT,
};

//! # Berth core
//!
//! Berth mirrors and hosts container images. This crate holds everything both runtimes (the
//! local binary and the AWS functions) share.
//!
//! ## Layout
//!
//! Dependencies point one way:
//! `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`.
//! Each module's own doc says where it sits; none reaches against the arrows.
//!
//! - [`domain`]: pure types parsed once at the edge (digests, repository names, references,
//!   tags, media types, manifests, tag filters, content keys and summaries, the remote URL
//!   policy). No I/O.
//! - [`ports`]: the small traits adapters implement (blob store, table, job queue, upstream
//!   registry), their error type, the typed jobs with the one retry policy every job consumer
//!   follows, and the lease timings.
//! - [`store`]: Berth's data model (content, repositories, versions, membership, remotes,
//!   distributions, tasks, uploads) written once over the table port: the version-commit
//!   protocol of invariants 1 and 2, names and items in one transaction, lists paged here.
//! - [`adapters`]: port implementations: in-memory, embedded (files, redb, the in-process job
//!   queue), the upstream registry client (reqwest), and S3, DynamoDB and SQS (feature `aws`).
//! - [`services`]: the rules, knowing only ports and the store: the registry (pull, push,
//!   uploads, versions on push), sync (plan, apply, progress), management (writes) and its
//!   read side (`catalog`), the task lifecycle, orphan cleanup, users and tokens. Errors are
//!   typed; the words clients read are chosen in `http`.
//! - [`http`]: the only code that knows the wire formats: the OCI `/v2` router with its one
//!   error table, `/token`, and the Pulp-compatible API (`http::pulp`, one module per
//!   resource). A handler parses, makes one service call and renders.
//! - [`observe`]: the metrics registry, the access log's notes, and the formats figures leave
//!   in (Prometheus text, CloudWatch EMF); beside `domain`, recorded into from every layer.
//! - [`config`]: the table of settings both runtimes read, parsed into one typed
//!   configuration.
//! - [`app`]: wiring adapters into services and routers, for either runtime.
//! - `lambda` (feature `lambda`): the AWS functions' secrets, SQS batch handler and middleware.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod observe;
pub mod ports;
pub mod services;
pub mod store;

#[cfg(test)]
mod port_suite;

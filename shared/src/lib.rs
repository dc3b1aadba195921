//! # Berth core
//!
//! Berth mirrors and hosts container images. This crate holds everything both runtimes (the
//! local binary and the AWS functions) share.
//!
//! ## Layout
//!
//! Dependencies point one way: `domain ← ports ← store ← services ← {http, adapters}`.
//!
//! - [`domain`]: pure types (digests, names, references, media types, manifests, content keys,
//!   content summaries). No I/O.
//! - [`ports`]: the small traits adapters implement (blob store, table, job queue, upstream
//!   registry) and their error types.
//! - [`store`]: Berth's data model (content, repositories, versions, membership,
//!   distributions, uploads) written once over the table port, with the version-commit
//!   protocol of invariants 1 and 2.
//! - [`services`]: the rules: the registry (push, pull, uploads, versions on push), the
//!   management service, and sync (upstream → new repository version).
//! - [`http`]: the wire formats: the OCI `/v2` router and its error table.
//! - [`adapters`]: port implementations: in-memory, embedded (files + redb), and the HTTP
//!   upstream client (reqwest).
//! - [`jobs`]: the in-process job runner over the table port.
//! - [`app`]: wiring adapters into services and routers.
//! - [`config`]: the table of settings both runtimes read, parsed into one typed configuration.
//! - `lambda` (feature `lambda`): the AWS functions' configuration, secrets and SQS handler.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod ports;
pub mod services;
pub mod store;

#[cfg(test)]
mod port_suite;

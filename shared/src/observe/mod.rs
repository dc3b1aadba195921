//! Observing Berth: the metrics registry every runtime records into, what a request notes
//! about itself for its access log entry, and the formats the figures leave in: the
//! Prometheus text exposition (`GET /metrics` on the local binary) and CloudWatch Embedded
//! Metric Format lines (on Lambda).
//!
//! - [`metrics`]: the registry: counters and histograms on atomics, labelled by bounded
//!   values (route templates, statuses, upstream hosts; never repository names or ids).
//! - [`exposition`]: the Prometheus text format of the registry and of the gauges read at
//!   scrape time.
//! - [`emf`]: the same figures as CloudWatch EMF documents.
//! - [`notes`]: who a request acted for, noted by the code that authenticated it.
//! - [`process`]: the process's own figures (memory, open files, CPU, start time).
//!
//! Layering: beside `domain`: pure figures and formats, no I/O beyond `/proc/self`; every
//! other module may record into it.

pub mod emf;
pub mod exposition;
pub mod metrics;
pub mod notes;
pub mod process;

pub use metrics::{Metrics, RequestRecord, SyncOutcome};

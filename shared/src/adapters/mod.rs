//! Port implementations.
//!
//! - [`memory`]: in-memory table and blob store, for fast tests (never the only test of a
//!   port: the same suites run on the embedded adapters).
//! - [`fs`]: content-addressed files under a data directory (embedded blob store).
//! - [`redb_table`]: the table port on redb (embedded metadata).
//! - [`upstream_http`]: the upstream port on reqwest (syncs and on-demand pulls).
//!
//! Layering: adapters implement `ports` and know nothing of services or HTTP.

#[cfg(feature = "local")]
pub mod fs;
pub mod memory;
#[cfg(feature = "local")]
pub mod redb_table;
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

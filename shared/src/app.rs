//! Wiring: adapters into the store and services, services into routers. Both runtimes call
//! this; they differ only in the adapters they pass.

use std::path::Path;
use std::sync::Arc;

use axum::Router;

use crate::adapters::memory::{MemoryBlobStore, MemoryTable};
use crate::http;
use crate::jobs::LocalJobQueue;
use crate::ports::{BlobStore, StoreError, Table};
use crate::services::{Registry, RegistryConfig};
use crate::store::Store;

/// The services of one Berth instance.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub blobs: Arc<dyn BlobStore>,
    pub registry: Arc<Registry>,
    pub jobs: LocalJobQueue,
}

impl App {
    pub fn new(table: Arc<dyn Table>, blobs: Arc<dyn BlobStore>, cfg: RegistryConfig) -> Self {
        let store = Store::new(table.clone());
        let registry = Arc::new(Registry::new(store.clone(), blobs.clone(), cfg));
        App {
            store,
            blobs,
            registry,
            jobs: LocalJobQueue::new(table),
        }
    }

    /// Everything in memory (tests).
    pub fn in_memory() -> Self {
        App::new(
            Arc::new(MemoryTable::new()),
            Arc::new(MemoryBlobStore::new()),
            RegistryConfig::default(),
        )
    }

    /// The embedded store under `data_dir`: `blobs/`, `uploads/`, `tmp/` and `berth.redb`.
    #[cfg(feature = "local")]
    pub async fn embedded(data_dir: &Path, cfg: RegistryConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::other)?;
        let table = crate::adapters::redb_table::RedbTable::open(&data_dir.join("berth.redb"))?;
        let blobs = crate::adapters::fs::FsBlobStore::open(data_dir).await?;
        Ok(App::new(Arc::new(table), Arc::new(blobs), cfg))
    }

    /// Every router this instance serves.
    pub fn router(&self) -> Router {
        http::oci_router(self.registry.clone())
    }
}

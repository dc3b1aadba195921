//! Services: Berth's rules, written against ports and the store only.
//!
//! Layering: services know `domain`, `ports` and `store`; never axum, redb, SDKs or reqwest.

mod registry;

pub use registry::{
    BlobBody, CatalogPage, ManifestBody, PushedManifest, Referrer, Registry, RegistryConfig, RegistryError, TagsPage,
    UploadStart,
};

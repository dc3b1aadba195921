//! Pure domain types: digests (and a resumable SHA-256), names, references, media types,
//! manifests, content and versions.
//!
//! Layering: `domain` imports nothing else of Berth and no I/O crate.

mod content;
mod digest;
pub mod filter;
mod labels;
pub mod manifest;
pub mod media;
pub mod mirrors;
mod names;
mod resumable;
pub mod schedule;
pub mod url_policy;

pub use content::{ContentKey, ContentSummary, ContentType, ContentTypeCounts};
pub use digest::{Algorithm, Digest, Hasher};
pub use labels::LabelSelect;
pub use manifest::{parse_manifest, DescriptorRef, ManifestKind, ParsedManifest};
pub use mirrors::MirrorRoutes;
pub use names::{Reference, RepoName, Tag};
pub use resumable::ResumableSha256;
pub use url_policy::{PrivateNetworks, UrlPolicy};

/// A value from a client that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid digest {0}")]
    InvalidDigest(String),
    #[error("invalid repository name {0}")]
    InvalidName(String),
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    #[error("schema 1 manifests are not supported")]
    Schema1,
    #[error("invalid pattern {0}")]
    InvalidPattern(String),
}

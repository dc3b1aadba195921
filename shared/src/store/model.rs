//! The records the store keeps.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ContentSummary, Digest, ParsedManifest, RepoName};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub created: DateTime<Utc>,
}

/// A manifest as stored. Its bytes are in the blob store under its digest; small manifests
/// are also kept inline so serving them costs no blob-store read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub size: u64,
    pub parsed: ParsedManifest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    pub created: DateTime<Utc>,
}

/// Largest manifest kept inline in its record.
pub const INLINE_MANIFEST_MAX: usize = 64 * 1024;

/// A manifest that names a subject, as the referrers API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferrerRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryKind {
    /// Filled by pushes.
    Push,
    /// Filled by syncs from a remote; refuses pushes.
    Mirror,
}

/// A writer's hold on a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    /// Milliseconds since the Unix epoch.
    pub until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub id: Uuid,
    pub name: String,
    pub kind: RepositoryKind,
    pub latest_version: u64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub retain_repo_versions: Option<u64>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    #[serde(default)]
    pub lease: Option<Lease>,
    /// Ids of the most recent operations that committed a version, so a redelivered job can
    /// tell its work is done (invariant 4).
    #[serde(default)]
    pub recent_ops: VecDeque<String>,
}

/// How many operation ids a repository remembers.
pub const RECENT_OPS: usize = 64;

impl Repository {
    pub fn new(name: &str, kind: RepositoryKind) -> Self {
        let now = Utc::now();
        Repository {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            kind,
            latest_version: 0,
            description: None,
            retain_repo_versions: None,
            created: now,
            updated: now,
            lease: None,
            recent_ops: VecDeque::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryVersion {
    pub repository: Uuid,
    pub number: u64,
    pub base_version: Option<u64>,
    pub content_summary: ContentSummary,
    pub created: DateTime<Utc>,
}

/// One stretch of a content unit's life in a repository: present in versions
/// `added <= N < removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub added: u64,
    #[serde(default)]
    pub removed: Option<u64>,
}

impl Membership {
    pub fn in_version(&self, n: u64) -> bool {
        self.added <= n && self.removed.is_none_or(|r| n < r)
    }
}

/// A base path served from a repository's latest version, or from one pinned version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    pub id: Uuid,
    pub name: String,
    pub base_path: RepoName,
    pub repository: Option<Uuid>,
    /// When set, the pinned version of `repository` to serve.
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub private: bool,
    pub created: DateTime<Utc>,
}

/// A blob upload in progress, bound to the repository it was started on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: Uuid,
    pub repository: Uuid,
    pub created: DateTime<Utc>,
}

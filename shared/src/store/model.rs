//! The records the store keeps.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// The node and the life of its process that took the lease (see [`super::NodeLife`]),
    /// when the store knows them: a later life of the same node takes the lease over at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life: Option<String>,
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
    /// The default remote of a mirror repository.
    #[serde(default)]
    pub remote: Option<Uuid>,
    #[serde(default)]
    pub pulp_labels: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    #[serde(default)]
    pub lease: Option<Lease>,
    /// Ids of the most recent operations that committed a version, so a redelivered job can
    /// tell its work is done (invariant 4).
    #[serde(default)]
    pub recent_ops: VecDeque<String>,
    /// At least the number the next version gets. Set when the latest version is deleted, so
    /// a number once committed is never given to other content (0: `latest_version + 1`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_version: u64,
    /// A deleted version whose rows are still being tidied: the writer that deleted it, or
    /// the next one to take the lease, finishes the work (see `store/deletion.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_version: Option<u64>,
    /// Whether the tag index (`tags#<id>`) holds every tag row, so tag reads use it. Set on
    /// new repositories, and on older ones by their next writer (see `store/members.rs`).
    #[serde(default)]
    pub tag_index: bool,
    /// Which version numbers exist, so a page of versions and their count come without
    /// reading every version. `None` on repositories from before it was kept; their next
    /// writer sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<VersionSpan>,
}

/// The versions of a repository that exist: every number from `first` to the latest, except
/// the deleted ones (numbers are never reused, so a number once deleted stays a gap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSpan {
    pub first: u64,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub deleted: BTreeSet<u64>,
}

impl VersionSpan {
    /// How many versions exist from `lo` to `hi`.
    pub fn count(&self, lo: u64, hi: u64) -> u64 {
        let lo = lo.max(self.first);
        if hi < lo {
            return 0;
        }
        hi - lo + 1 - self.deleted.range(lo..=hi).count() as u64
    }

    /// The number of the version `k` places below `hi` (0: the newest from `hi` down), among
    /// those from `lo` to `hi`.
    pub fn nth_down(&self, lo: u64, hi: u64, k: u64) -> Option<u64> {
        let lo = lo.max(self.first);
        if hi < lo {
            return None;
        }
        let mut n = hi.checked_sub(k)?;
        for gap in self.deleted.range(lo..=hi).rev() {
            if *gap < n {
                break;
            }
            n = n.checked_sub(1)?;
        }
        (n >= lo).then_some(n)
    }

    /// The number of the version `k` places above `lo` (0: the oldest from `lo` up), among
    /// those from `lo` to `hi`.
    pub fn nth_up(&self, lo: u64, hi: u64, k: u64) -> Option<u64> {
        let lo = lo.max(self.first);
        if hi < lo {
            return None;
        }
        let mut n = lo.checked_add(k)?;
        for gap in self.deleted.range(lo..=hi) {
            if *gap > n {
                break;
            }
            n += 1;
        }
        (n <= hi).then_some(n)
    }

    /// Version `number` is deleted; `successor` is the version after it, if any.
    pub fn delete(&mut self, number: u64, successor: Option<u64>) {
        if number == self.first {
            self.first = successor.unwrap_or(number + 1);
            let first = self.first;
            self.deleted.retain(|n| *n > first);
        } else {
            self.deleted.insert(number);
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
            remote: None,
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
            lease: None,
            recent_ops: VecDeque::new(),
            next_version: 0,
            deleted_version: None,
            tag_index: true,
            versions: Some(VersionSpan::default()),
        }
    }

    /// The number the next committed version gets.
    pub fn next_number(&self) -> u64 {
        (self.latest_version + 1).max(self.next_version)
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
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub pulp_labels: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    #[serde(default = "Utc::now")]
    pub updated: DateTime<Utc>,
    /// The namespace of the first segment of `base_path`. The store sets it whenever it
    /// writes the distribution; `None` only in records older versions wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Uuid>,
    /// For a pull-through distribution: the pull-through remote whose registry it caches
    /// (`repository` is then `None`). For a distribution a pull through the cache made: the
    /// container remote its repository's content comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Uuid>,
    /// A pull-through distribution: `<base_path>/<upstream path>` pulls `<upstream path>`
    /// from `remote`'s registry, making a distribution of its own on first pull.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pull_through: bool,
    /// For a distribution a pull through the cache made: the pull-through distribution it
    /// belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_by: Option<Uuid>,
    /// Left out of the content app's listings (pulpcore's `hidden`); kept and rendered only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl Distribution {
    /// A public distribution of `base_path` serving the latest version of `repository`.
    pub fn new(name: &str, base_path: RepoName, repository: Option<Uuid>) -> Self {
        let now = Utc::now();
        Distribution {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            base_path,
            repository,
            version: None,
            private: false,
            description: None,
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
            namespace: None,
            remote: None,
            pull_through: false,
            cached_by: None,
            hidden: false,
        }
    }

    /// The name of the namespace the distribution belongs to: its base path's first segment.
    pub fn namespace_name(&self) -> &str {
        namespace_of(&self.base_path)
    }
}

/// The namespace a base path belongs to: its first segment.
pub fn namespace_of(base_path: &RepoName) -> &str {
    base_path.as_str().split('/').next().unwrap_or_default()
}

/// The first segment of distributions' base paths, as Pulp's container plugin groups them:
/// made with the first distribution in it (by the API or by a push), deleted with everything
/// in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub pulp_labels: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl Namespace {
    pub fn new(name: &str) -> Self {
        let now = Utc::now();
        Namespace {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
        }
    }
}

/// One worker of a job runner (a slot of the in-process runner, an execution environment of
/// the sync-worker function), as its heartbeats left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Derived from the name ([`WorkerRecord::id_of`]), so it is the same at every heartbeat.
    pub id: Uuid,
    pub name: String,
    /// The first heartbeat of this name that the table still holds.
    pub created: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// How long after its last heartbeat the worker counts as online.
    pub ttl_secs: u64,
    /// What the worker's build implements, component → version.
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// The task of the job it is running, if any.
    #[serde(default)]
    pub current_task: Option<Uuid>,
}

impl WorkerRecord {
    /// The id of the worker named `name`.
    pub fn id_of(name: &str) -> Uuid {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(format!("worker/{name}").as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// Whether it heartbeated within its time to live before `now`.
    pub fn online_at(&self, now: DateTime<Utc>) -> bool {
        let ttl = i64::try_from(self.ttl_secs)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .unwrap_or(chrono::TimeDelta::MAX);
        now.checked_sub_signed(ttl)
            .is_none_or(|since| self.last_heartbeat >= since)
    }
}

/// A blob upload in progress, bound to the repository it was started on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: Uuid,
    pub repository: Uuid,
    pub created: DateTime<Utc>,
}

/// How a signature was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureType {
    /// Simple signing ("atomic"): an OpenPGP signed message over a JSON payload.
    Atomic,
    /// A cosign signature payload.
    Cosign,
}

/// A signature of a manifest, stored as content `ContentKey::Signature(digest)`, where the
/// digest is the sha256 of the signature bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRecord {
    pub digest: Digest,
    /// The manifest it signs.
    pub signed: Digest,
    #[serde(rename = "type")]
    pub kind: SignatureType,
    /// `<manifest digest>@<32 hex>`, or the upstream's name for it.
    pub name: String,
    #[serde(default)]
    pub key_id: Option<String>,
    /// The signature bytes, base64.
    pub data: String,
    pub created: DateTime<Utc>,
}

/// A blob a repository's versions hold but the blob store does not (on-demand and streamed
/// syncs): where to fetch it on first pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LazyBlob {
    pub remote: Uuid,
    /// The size the manifest states.
    pub size: u64,
}

/// A resource a task touched, independent of how the API spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceRef {
    Repository {
        id: Uuid,
        kind: RepositoryKind,
    },
    RepositoryVersion {
        repository: Uuid,
        kind: RepositoryKind,
        number: u64,
    },
    Remote {
        id: Uuid,
    },
    Distribution {
        id: Uuid,
    },
    Namespace {
        id: Uuid,
    },
    PullThroughRemote {
        id: Uuid,
    },
    PullThroughDistribution {
        id: Uuid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Waiting,
    Running,
    Completed,
    Failed,
    Canceled,
    Canceling,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Waiting => "waiting",
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Canceling => "canceling",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => TaskState::Waiting,
            "running" => TaskState::Running,
            "completed" => TaskState::Completed,
            "failed" => TaskState::Failed,
            "canceled" => TaskState::Canceled,
            "canceling" => TaskState::Canceling,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed | TaskState::Canceled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub message: String,
    pub code: String,
    pub state: String,
    pub total: Option<u64>,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub name: String,
    pub state: TaskState,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    #[serde(default)]
    pub started: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub progress_reports: Vec<ProgressReport>,
    #[serde(default)]
    pub created_resources: Vec<ResourceRef>,
    /// Resources held exclusively, then shared ones.
    #[serde(default)]
    pub reserved_resources: Vec<ResourceRef>,
    #[serde(default)]
    pub shared_resources: Vec<ResourceRef>,
    #[serde(default)]
    pub result: Option<ResourceRef>,
    pub logging_cid: String,
    /// The number of the user who started it (none: Berth itself, or a superuser of the
    /// configuration).
    #[serde(default)]
    pub owner: Option<u64>,
}

impl Task {
    pub fn new(name: &str) -> Self {
        let now = Utc::now();
        Task {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            state: TaskState::Waiting,
            created: now,
            updated: now,
            started: None,
            finished: None,
            error: None,
            progress_reports: Vec::new(),
            created_resources: Vec::new(),
            reserved_resources: Vec::new(),
            shared_resources: Vec::new(),
            result: None,
            logging_cid: Uuid::new_v4().simple().to_string(),
            owner: None,
        }
    }
}

/// A user of the management API and the registry, with Pulp's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    /// A superuser: may do everything, whatever the roles say (Pulp's `is_superuser`).
    pub admin: bool,
    /// The user's number (Pulp's `id`); 0 in a record stored before users had numbers, which
    /// gets one at its next write (see `accounts.rs`).
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email: String,
    /// Pulp's `is_staff` (kept and shown; it grants nothing by itself, as in Pulp).
    #[serde(default)]
    pub is_staff: bool,
    /// An inactive user cannot log in, and tokens issued to it stop working.
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub date_joined: Option<DateTime<Utc>>,
}

fn yes() -> bool {
    true
}

impl User {
    /// A new active user.
    pub fn new(name: &str, password_hash: String, admin: bool) -> Self {
        User {
            name: name.to_owned(),
            password_hash,
            admin,
            id: 0,
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            is_staff: admin,
            is_active: true,
            date_joined: Some(Utc::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers that exist from `lo` to `hi`, by brute force.
    fn existing(span: &VersionSpan, lo: u64, hi: u64) -> Vec<u64> {
        (lo.max(span.first)..=hi)
            .filter(|n| !span.deleted.contains(n))
            .collect()
    }

    #[test]
    fn a_span_counts_and_finds_versions_around_its_gaps() {
        let mut span = VersionSpan::default();
        for (n, next) in [
            (0, Some(1)),
            (4, Some(5)),
            (5, Some(6)),
            (9, Some(10)),
            (1, Some(2)),
            (20, None),
        ] {
            span.delete(n, next);
        }
        assert_eq!(span.first, 2);
        assert_eq!(span.deleted.iter().copied().collect::<Vec<_>>(), [4, 5, 9, 20]);
        for (lo, hi) in [(0, 19), (3, 10), (4, 5), (5, 9), (10, 2), (0, 25)] {
            let want = existing(&span, lo, hi);
            assert_eq!(span.count(lo, hi), want.len() as u64, "{lo}..={hi}");
            for k in 0..want.len() as u64 + 2 {
                assert_eq!(
                    span.nth_up(lo, hi, k),
                    want.get(k as usize).copied(),
                    "up {lo}..={hi} {k}"
                );
                let down = want.iter().rev().nth(k as usize).copied();
                assert_eq!(span.nth_down(lo, hi, k), down, "down {lo}..={hi} {k}");
            }
        }
    }
}

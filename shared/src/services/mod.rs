//! Services: Berth's rules, written against ports and the store only.
//!
//! Layering: services know `domain`, `ports` and `store`; never axum, redb, SDKs or reqwest.

pub mod access;
pub mod accounts;
pub mod acting;
mod browse;
mod caches;
mod catalog;
mod content;
mod heartbeats;
mod invalid;
mod manage;
mod modify;
pub(crate) mod namespaces;
pub mod observed;
mod orphans;
pub mod policy;
mod registry;
mod repair;
mod schedules;
mod sessions;
mod sync;
mod tasks;
mod token_grants;
pub mod tokens;
mod users;
mod versions;
mod worker;

/// The job types, made here and carried by the queue adapters (defined with the queue port).
pub use crate::ports::{OrphanJob, RepairJob, SyncJob};
pub use access::{AccessRules, AuthMode};
pub use accounts::{
    Accounts, GroupFilter, Identity, NestedRoles, ObjectRoles, RoleFilter, UserChange, UserFilter, UserView,
};
pub use browse::{
    served_version, Browse, ChildView, DistributionRow, ManifestView, RepoRow, RepositoriesView, RepositoryView,
    TagView, VersionView,
};
pub use caches::{PullThroughDistribution, PullThroughSpec};
pub use catalog::{
    AnyContentFilter, Catalog, ContentFilter, DistributionFilter, NameFilter, NamePattern, RemoteFilter, ResourceName,
    TaskFilter, TaskResources, TimeRange, VersionFilter,
};
pub use heartbeats::{Heartbeats, TimeFilter, WorkerFilter, HEARTBEAT_EVERY, WORKER_TTL};
pub use invalid::{check_url_shape, Invalid, Who};
pub use manage::{DistributionSpec, Manage, ManageError, Serves, DELETE_VERSION_TASK_NAME, SYNC_TASK_NAME};
pub use modify::{CopySelection, CopySource};
pub use namespaces::{NamespaceFilter, Sort, SortKey};
pub use orphans::{Orphans, DEFAULT_PROTECTION, ORPHAN_CLEANUP_TASK_NAME};
pub use policy::{Act, Scope, Target};
pub use repair::{Repair, RepairSettings, REPAIR_CONCURRENCY, REPAIR_TASK_NAME};
pub use schedules::{task_name as schedule_task_name, Fired, ScheduleFilter, ScheduleOrder, ScheduleSpec};
pub use sessions::{Checked, Sessions, SESSION_LIFETIME};
pub use sync::{SyncService, SyncSettings};
pub use tasks::{CancelError, Outcome, Started, Tasks};
pub use token_grants::{grant_token, Credentials, GrantError, IssuedToken, TokenRequest};
pub use users::{generate_password, hash_password, password_fingerprint, Login, LoginLimits, Users};
pub use versions::Versions;
pub use worker::{SyncRunner, Worker};

pub use registry::{
    BlobBody, CatalogPage, ManifestBody, PushedManifest, Referrer, Registry, RegistryConfig, RegistryError, TagsPage,
    UploadStart,
};

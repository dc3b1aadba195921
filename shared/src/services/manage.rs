//! The management service's write side: repositories, remotes, distributions, versions,
//! tasks. Reads and lists are in `catalog.rs`, content changes in `modify.rs`, refusals in
//! `invalid.rs`; the Pulp-compatible REST API is one wire format for all of them.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, over the store and the job queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::tasks::{CancelError, Outcome, Tasks};
use super::versions::Versions;
use crate::domain::{ContentKey, RepoName, UrlPolicy};
use crate::ports::{Job, JobKind, JobQueue, LeaseTimings, OrphanJob, RepairJob, StoreError, SyncJob};
use crate::store::{
    Deleted, Distribution, ObjectKind, ObjectRef, Remote, RemoteKind, Repository, RepositoryKind, RepositoryVersion,
    ResourceRef, Store, Task,
};

pub use super::invalid::{Invalid, ManageError};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// Checks a remote's TLS settings when they differ from `before` (or on create): `ca_cert`,
/// `client_cert` and `client_key` must be PEM the upstream client can use, the key in
/// `client_key` or in `client_cert`, never one without the other.
fn check_remote_connection(before: Option<&Remote>, r: &Remote) -> Result<()> {
    let tls = |r: &Remote| crate::ports::UpstreamTls {
        ca_cert: r.ca_cert.clone(),
        client_cert: r.client_cert.clone(),
        client_key: r.client_key.clone(),
    };
    let now = tls(r);
    if before.is_none_or(|b| tls(b) != now) {
        now.check().map_err(|e| ManageError::field(e.field, e.message))?;
    }
    Ok(())
}

pub(super) const LEASE_TTL: Duration = LeaseTimings::MANAGE.ttl;
pub(super) const LEASE_WAIT: Duration = LeaseTimings::MANAGE.wait;

/// What a distribution serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serves {
    Nothing,
    Latest(Uuid),
    Version(Uuid, u64),
}

/// The fields of a distribution a create or update sets.
#[derive(Debug, Clone)]
pub struct DistributionSpec {
    pub name: String,
    pub base_path: RepoName,
    pub serves: Serves,
    pub private: bool,
    pub description: Option<String>,
    pub pulp_labels: BTreeMap<String, String>,
}

pub const SYNC_TASK_NAME: &str = "pulp_container.app.tasks.synchronize.synchronize";
pub const DELETE_VERSION_TASK_NAME: &str = "pulpcore.app.tasks.repository.delete_version";
/// The error of a task asked to delete a repository's only version.
const LAST_VERSION: &str = "Cannot delete repository version. Repositories must have at least one repository version.";

pub struct Manage {
    store: Store,
    jobs: Arc<dyn JobQueue>,
    urls: UrlPolicy,
    /// Gives creators what they make (none: nobody owns anything).
    pub(crate) accounts: Option<Arc<super::Accounts>>,
}

impl Manage {
    pub fn new(store: Store, jobs: Arc<dyn JobQueue>) -> Self {
        Manage {
            store,
            jobs,
            urls: UrlPolicy::default(),
            accounts: None,
        }
    }

    /// Makes creators the owners of what they make.
    pub fn with_accounts(mut self, accounts: Arc<super::Accounts>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// The remote URL policy remotes' `url`, `proxy_url` and `sigstore` are checked against
    /// (the default allows loopback and private networks).
    pub fn with_url_policy(mut self, urls: UrlPolicy) -> Self {
        self.urls = urls;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    // ---- repositories ----------------------------------------------------------------------

    pub async fn create_repository(&self, mut repo: Repository) -> Result<Repository> {
        if let Some(remote) = repo.remote {
            self.store
                .remote(remote)
                .await?
                .filter(|r| r.kind == RemoteKind::Container)
                .ok_or_else(|| ManageError::invalid("remote", Invalid::NoObject))?;
        }
        repo.latest_version = 0;
        match self.store.create_repository(&repo).await {
            Ok(()) => Ok(repo),
            Err(StoreError::Conflict(_)) => Err(ManageError::invalid("name", Invalid::Unique)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn repository(&self, id: Uuid, kind: RepositoryKind) -> Result<Repository> {
        self.store
            .repository(id)
            .await?
            .filter(|r| r.kind == kind)
            .ok_or(ManageError::NotFound)
    }

    pub async fn update_repository(&self, id: Uuid, f: impl Fn(&mut Repository) -> Result<()>) -> Result<Repository> {
        let probe = {
            let mut r = self.store.repository(id).await?.ok_or(ManageError::NotFound)?;
            f(&mut r)?;
            r
        };
        if let Some(remote) = probe.remote {
            self.store
                .remote(remote)
                .await?
                .filter(|r| r.kind == RemoteKind::Container)
                .ok_or_else(|| ManageError::invalid("remote", Invalid::NoObject))?;
        }
        let before = self.store.repository(id).await?.map(|r| r.retain_repo_versions);
        let repo = match self.store.update_repository(id, &f).await {
            Err(ManageError::Internal(e))
                if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Conflict(_))) =>
            {
                return Err(ManageError::invalid("name", Invalid::Unique))
            }
            other => other?,
        };
        if before != Some(repo.retain_repo_versions) {
            // pulpcore applies a changed retention at once
            Versions::new(&self.store).retain(id).await?;
            return self.store.repository(id).await?.ok_or(ManageError::NotFound);
        }
        Ok(repo)
    }

    /// Deletes a repository; distributions that served it serve nothing afterwards.
    pub async fn delete_repository(&self, id: Uuid) -> Result<()> {
        let repo = self.store.repository(id).await?.ok_or(ManageError::NotFound)?;
        for d in self.store.distributions(None, usize::MAX).await? {
            if d.repository == Some(id) {
                let mut after = d.clone();
                after.repository = None;
                after.version = None;
                after.updated = Utc::now();
                self.store.replace_distribution(&d, &after).await?;
            }
        }
        self.store.delete_repository(&repo).await?;
        if repo.kind == RepositoryKind::Mirror {
            self.drop_roles(ObjectRef::new(ObjectKind::Repository, id)).await?;
        }
        Ok(())
    }

    pub async fn version(&self, repo: &Repository, number: u64) -> Result<RepositoryVersion> {
        self.store.version(repo, number).await?.ok_or(ManageError::NotFound)
    }

    /// Deletes a version (refused while a distribution serves it), recorded as pulpcore's
    /// task: failed when it is the repository's last remaining version.
    pub async fn delete_version(&self, repo: &Repository, number: u64) -> Result<Task> {
        let reserved = vec![ResourceRef::Repository {
            id: repo.id,
            kind: repo.kind,
        }];
        match Versions::new(&self.store).delete(repo, number).await? {
            Deleted::LastRemaining => {
                self.failed_task(DELETE_VERSION_TASK_NAME, reserved, LAST_VERSION.into())
                    .await
            }
            Deleted::Squashed { .. } | Deleted::Reverted { .. } => {
                self.completed_task(DELETE_VERSION_TASK_NAME, reserved, vec![], None)
                    .await
            }
        }
    }

    // ---- remotes ---------------------------------------------------------------------------

    pub async fn create_remote(&self, r: Remote) -> Result<Remote> {
        self.check_remote_urls(None, &r)?;
        check_remote_connection(None, &r)?;
        match self.store.create_remote(&r).await {
            Ok(()) => Ok(r),
            Err(StoreError::Conflict(_)) => Err(ManageError::invalid("name", Invalid::Unique)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remote(&self, id: Uuid) -> Result<Remote> {
        self.store.remote(id).await?.ok_or(ManageError::NotFound)
    }

    /// Updates a remote with `f`; a URL it changes is checked against the remote URL policy
    /// (one it leaves alone is not, so a remote saved under another policy can still be
    /// renamed; its syncs are refused when they connect).
    pub async fn update_remote(&self, id: Uuid, f: impl Fn(&mut Remote) -> Result<()>) -> Result<Remote> {
        let f = |r: &mut Remote| {
            let before = r.clone();
            f(r)?;
            self.check_remote_urls(Some(&before), r)?;
            check_remote_connection(Some(&before), r)
        };
        match self.store.update_remote(id, f).await {
            Err(ManageError::Internal(e))
                if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Conflict(_))) =>
            {
                Err(ManageError::invalid("name", Invalid::Unique))
            }
            other => other,
        }
    }

    /// Checks the URLs Berth would contact for a remote (`url`, `proxy_url`, `sigstore`)
    /// against the remote URL policy, those that differ from `before` when given. Names are
    /// not resolved here (DNS may answer differently at sync time; the upstream client checks
    /// the addresses then), so only IP literals and names known to be refused are caught.
    fn check_remote_urls(&self, before: Option<&Remote>, r: &Remote) -> Result<()> {
        let urls = |r: &Remote| [Some(r.url.clone()), r.proxy_url.clone(), r.sigstore.clone()];
        let then = before.map(urls);
        for (i, (field, url)) in ["url", "proxy_url", "sigstore"].into_iter().zip(urls(r)).enumerate() {
            let Some(url) = url else { continue };
            if then.as_ref().is_some_and(|t| t[i].as_ref() == Some(&url)) {
                continue;
            }
            if let Err(e) = self.urls.check_url(&url) {
                return Err(ManageError::invalid(field, Invalid::Url(e)));
            }
        }
        Ok(())
    }

    /// Deletes a remote; repositories that used it as their default forget it.
    pub async fn delete_remote(&self, id: Uuid) -> Result<()> {
        let r = self.remote(id).await?;
        for repo in self.store.repositories().await? {
            if repo.remote == Some(id) {
                self.store
                    .update_repository::<ManageError>(repo.id, |x| {
                        x.remote = None;
                        Ok(())
                    })
                    .await?;
            }
        }
        self.store.delete_remote(&r).await?;
        self.drop_roles(ObjectRef::new(ObjectKind::Remote, id)).await
    }

    // ---- distributions ---------------------------------------------------------------------

    async fn check_serves(&self, serves: &Serves) -> Result<()> {
        match serves {
            Serves::Nothing => Ok(()),
            Serves::Latest(id) => {
                self.store
                    .repository(*id)
                    .await?
                    .ok_or_else(|| ManageError::invalid("repository", Invalid::NoObject))?;
                Ok(())
            }
            Serves::Version(id, n) => {
                let bad = || ManageError::invalid("repository_version", Invalid::NoObject);
                let repo = self.store.repository(*id).await?.ok_or_else(bad)?;
                self.store.version(&repo, *n).await?.ok_or_else(bad)?;
                Ok(())
            }
        }
    }

    pub(super) async fn check_base_path(&self, path: &RepoName, except: Option<Uuid>) -> Result<()> {
        if let Some(d) = self.store.overlapping_distribution(path.as_str(), except).await? {
            return Err(ManageError::invalid("base_path", Invalid::BasePathOverlaps(d.name)));
        }
        Ok(())
    }

    fn apply(d: &mut Distribution, spec: DistributionSpec) {
        d.name = spec.name;
        d.base_path = spec.base_path;
        (d.repository, d.version) = match spec.serves {
            Serves::Nothing => (None, None),
            Serves::Latest(id) => (Some(id), None),
            Serves::Version(id, n) => (Some(id), Some(n)),
        };
        d.private = spec.private;
        d.description = spec.description;
        d.pulp_labels = spec.pulp_labels;
        d.updated = Utc::now();
    }

    pub async fn create_distribution(&self, spec: DistributionSpec) -> Result<Distribution> {
        self.check_serves(&spec.serves).await?;
        if self.store.distribution_by_base_path(&spec.base_path).await?.is_some() {
            return Err(ManageError::invalid("base_path", Invalid::Unique));
        }
        self.check_base_path(&spec.base_path, None).await?;
        let mut d = Distribution::new("", spec.base_path.clone(), None);
        Self::apply(&mut d, spec);
        self.create_distribution_record(d).await
    }

    /// Stores a new distribution; a name or base path taken meanwhile is a field error.
    pub(super) async fn create_distribution_record(&self, d: Distribution) -> Result<Distribution> {
        match self.store.create_distribution(&d).await {
            Ok(()) => Ok(d),
            Err(StoreError::Conflict(_)) => {
                if self.store.distribution_by_base_path(&d.base_path).await?.is_some() {
                    Err(ManageError::invalid("base_path", Invalid::Unique))
                } else {
                    Err(ManageError::invalid("name", Invalid::Unique))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn distribution(&self, id: Uuid) -> Result<Distribution> {
        self.store.distribution(id).await?.ok_or(ManageError::NotFound)
    }

    pub async fn update_distribution(
        &self,
        id: Uuid,
        f: impl FnOnce(&Distribution) -> Result<DistributionSpec>,
    ) -> Result<Distribution> {
        let before = self.distribution(id).await?;
        let spec = f(&before)?;
        self.check_serves(&spec.serves).await?;
        if spec.base_path != before.base_path {
            if self.store.distribution_by_base_path(&spec.base_path).await?.is_some() {
                return Err(ManageError::invalid("base_path", Invalid::Unique));
            }
            self.check_base_path(&spec.base_path, Some(id)).await?;
        }
        let mut after = before.clone();
        Self::apply(&mut after, spec);
        self.replace_distribution_record(&before, after).await
    }

    /// Stores a changed distribution; a name or base path taken meanwhile is a field error.
    pub(super) async fn replace_distribution_record(
        &self,
        before: &Distribution,
        after: Distribution,
    ) -> Result<Distribution> {
        match self.store.replace_distribution(before, &after).await {
            Ok(()) => Ok(after),
            Err(StoreError::Conflict(_)) => Err(if after.name != before.name {
                ManageError::invalid("name", Invalid::Unique)
            } else {
                ManageError::invalid("base_path", Invalid::Unique)
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a distribution; a push repository it serves goes with it (as in Pulp: push
    /// repositories live and die with their distribution).
    pub async fn delete_distribution(&self, id: Uuid) -> Result<()> {
        let d = self.distribution(id).await?;
        self.store.delete_distribution(&d).await?;
        self.drop_roles(ObjectRef::new(ObjectKind::Distribution, id)).await?;
        if let Some(repo) = d.repository {
            match self.store.repository(repo).await? {
                Some(r) if r.kind == RepositoryKind::Push => self.delete_repository(repo).await?,
                _ => {}
            }
        }
        Ok(())
    }

    // ---- tasks -----------------------------------------------------------------------------

    /// Records a task that ran inside the request (local operations that finish at once).
    pub async fn completed_task(
        &self,
        name: &str,
        reserved: Vec<ResourceRef>,
        created: Vec<ResourceRef>,
        result: Option<ResourceRef>,
    ) -> Result<Task> {
        let outcome = Outcome {
            created,
            result,
            ..Outcome::completed(None)
        };
        Ok(Tasks::new(&self.store).record(name, reserved, outcome).await?)
    }

    /// Records a task that failed inside the request.
    pub async fn failed_task(&self, name: &str, reserved: Vec<ResourceRef>, error: String) -> Result<Task> {
        Ok(Tasks::new(&self.store)
            .record(name, reserved, Outcome::failed(error))
            .await?)
    }

    pub async fn task(&self, id: Uuid) -> Result<Task> {
        self.store.task(id).await?.ok_or(ManageError::NotFound)
    }

    /// Cancels a task: a waiting task is canceled at once, a running one is asked to stop
    /// (`canceling`); a finished one cannot be canceled.
    pub async fn cancel_task(&self, id: Uuid) -> Result<Task> {
        Tasks::new(&self.store).cancel(id).await.map_err(|e| match e {
            CancelError::Finished(s) => ManageError::invalid("state", Invalid::TaskFinished(s)),
            CancelError::Store(e) => e.into(),
        })
    }

    pub async fn delete_task(&self, id: Uuid) -> Result<()> {
        let t = self.task(id).await?;
        if !t.state.is_final() {
            return Err(ManageError::invalid("state", Invalid::TaskUnfinished));
        }
        self.store.delete_task(&t).await?;
        Ok(())
    }

    /// Starts a sync: a waiting task and a job for the worker. Two syncs of one repository
    /// never interleave (the worker holds the repository's lease).
    pub async fn sync(&self, repo: &Repository, remote: Uuid, mirror: bool, signed_only: bool) -> Result<Task> {
        self.start_sync(owned(Task::new(SYNC_TASK_NAME)), repo, remote, mirror, signed_only)
            .await
    }

    /// [`Manage::sync`] as task `t` (made by the caller: a schedule names its task first).
    pub(crate) async fn start_sync(
        &self,
        mut t: Task,
        repo: &Repository,
        remote: Uuid,
        mirror: bool,
        signed_only: bool,
    ) -> Result<Task> {
        let r = self.remote(remote).await.map_err(|e| match e {
            ManageError::NotFound => ManageError::invalid("remote", Invalid::NoObject),
            e => e,
        })?;
        if r.kind != RemoteKind::Container {
            return Err(ManageError::invalid("remote", Invalid::PullThroughRemote));
        }
        t.reserved_resources = vec![ResourceRef::Repository {
            id: repo.id,
            kind: repo.kind,
        }];
        t.shared_resources = vec![ResourceRef::Remote { id: remote }];
        self.store.create_task(&t).await?;
        let job = SyncJob {
            task: t.id,
            repository: repo.id,
            remote,
            mirror,
            signed_only,
        };
        self.jobs
            .enqueue(Job::new(t.id.to_string(), JobKind::Sync(job)))
            .await?;
        Ok(t)
    }

    /// Starts a repair of version `number` (which must exist): a waiting task holding the
    /// repository as a shared resource, as pulpcore's, and a job for the worker.
    pub async fn repair_version(&self, repo: &Repository, number: u64, verify_checksums: bool) -> Result<Task> {
        self.version(repo, number).await?;
        let mut t = owned(Task::new(super::REPAIR_TASK_NAME));
        t.shared_resources = vec![ResourceRef::Repository {
            id: repo.id,
            kind: repo.kind,
        }];
        self.store.create_task(&t).await?;
        let job = RepairJob {
            task: t.id,
            repository: repo.id,
            version: number,
            verify_checksums,
        };
        self.jobs
            .enqueue(Job::new(t.id.to_string(), JobKind::Repair(job)))
            .await?;
        Ok(t)
    }

    /// Starts an orphan cleanup: a waiting task and a job for the worker.
    pub async fn orphan_cleanup(&self, protection: std::time::Duration, only: Option<Vec<ContentKey>>) -> Result<Task> {
        self.start_orphan_cleanup(owned(Task::new(super::ORPHAN_CLEANUP_TASK_NAME)), protection, only)
            .await
    }

    /// [`Manage::orphan_cleanup`] as task `t`.
    pub(crate) async fn start_orphan_cleanup(
        &self,
        t: Task,
        protection: std::time::Duration,
        only: Option<Vec<ContentKey>>,
    ) -> Result<Task> {
        self.store.create_task(&t).await?;
        let job = OrphanJob {
            task: t.id,
            protection_secs: protection.as_secs(),
            only: only.map(|keys| keys.iter().map(ContentKey::encode).collect()),
        };
        self.jobs
            .enqueue(Job::new(t.id.to_string(), JobKind::Orphans(job)))
            .await?;
        Ok(t)
    }
}

/// A task owned by the caller the current request acts for (see [`super::acting`]).
pub(crate) fn owned(mut t: Task) -> Task {
    t.owner = super::acting::actor().map(|a| a.user_id).filter(|id| *id != 0);
    t
}

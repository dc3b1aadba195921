//! Pull-through caching's management side: pull-through remotes (Pulp's
//! `ContainerPullThroughRemote`, a [`Remote`] of kind [`RemoteKind::PullThrough`]) and
//! pull-through distributions (`ContainerPullThroughDistribution`, a [`Distribution`] with
//! `pull_through`), kept apart from container remotes and distributions: an operation on one
//! kind never finds an object of the other. What a pull does is the registry's
//! (`registry/pull_through.rs`).
//!
//! Permissions are the container kinds': a pull-through remote needs and gives what a container
//! remote does (`container.add_containerremote`, owner role `container.containerremote_owner`),
//! a pull-through distribution what a container distribution does in its namespace.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, over the store.

use std::collections::BTreeMap;

use chrono::Utc;
use uuid::Uuid;

use super::invalid::{Invalid, ManageError};
use super::policy::{Act, Target};
use super::{Catalog, DistributionFilter, Identity, Manage};
use crate::domain::RepoName;
use crate::store::{Distribution, Listing, Page, Remote, RemoteKind};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// The fields of a pull-through distribution a create or update sets.
#[derive(Debug, Clone)]
pub struct PullThroughSpec {
    pub name: String,
    pub base_path: RepoName,
    /// The pull-through remote.
    pub remote: Uuid,
    pub private: bool,
    pub hidden: bool,
    pub description: Option<String>,
    pub pulp_labels: BTreeMap<String, String>,
}

impl PullThroughSpec {
    fn apply(self, d: &mut Distribution) {
        d.name = self.name;
        d.base_path = self.base_path;
        d.remote = Some(self.remote);
        d.private = self.private;
        d.hidden = self.hidden;
        d.description = self.description;
        d.pulp_labels = self.pulp_labels;
        d.pull_through = true;
        (d.repository, d.version) = (None, None);
        d.updated = Utc::now();
    }
}

/// A pull-through distribution and the distributions pulls through it made.
pub type PullThroughDistribution = (Distribution, Vec<Uuid>);

impl Manage {
    /// The remote `id` when it is of `kind`; `NotFound` otherwise.
    pub async fn remote_of(&self, id: Uuid, kind: RemoteKind) -> Result<Remote> {
        self.store()
            .remote(id)
            .await?
            .filter(|r| r.kind == kind)
            .ok_or(ManageError::NotFound)
    }

    /// Deletes remote `id` of `kind`. Distributions that named it forget it (Pulp's
    /// `SET_NULL`): a pull-through distribution without its remote caches nothing new.
    pub async fn delete_remote_of(&self, id: Uuid, kind: RemoteKind) -> Result<()> {
        self.remote_of(id, kind).await?;
        for d in self.store().distributions(None, usize::MAX).await? {
            if d.remote == Some(id) {
                let mut after = d.clone();
                after.remote = None;
                after.updated = Utc::now();
                self.store().replace_distribution(&d, &after).await?;
            }
        }
        self.delete_remote(id).await
    }

    /// The container distribution `id` (`NotFound` for a pull-through one).
    pub async fn container_distribution(&self, id: Uuid) -> Result<Distribution> {
        Some(self.distribution(id).await?)
            .filter(|d| !d.pull_through)
            .ok_or(ManageError::NotFound)
    }

    /// The pull-through distribution `id` (`NotFound` for a container one).
    async fn pull_through_only(&self, id: Uuid) -> Result<Distribution> {
        Some(self.distribution(id).await?)
            .filter(|d| d.pull_through)
            .ok_or(ManageError::NotFound)
    }

    /// Checks that `id` is a pull-through remote (a field error on `remote` otherwise).
    async fn check_pull_through_remote(&self, id: Uuid) -> Result<()> {
        match self.remote_of(id, RemoteKind::PullThrough).await {
            Err(ManageError::NotFound) => Err(ManageError::invalid("remote", Invalid::NoObject)),
            other => other.map(|_| ()),
        }
    }

    /// Makes a pull-through distribution. Its base path may neither be another's nor lie
    /// above or under another's (pulpcore's overlap check).
    pub async fn create_pull_through_distribution(&self, spec: PullThroughSpec) -> Result<Distribution> {
        self.check_pull_through_remote(spec.remote).await?;
        if self.store().distribution_by_base_path(&spec.base_path).await?.is_some() {
            return Err(ManageError::invalid("base_path", Invalid::Unique));
        }
        self.check_base_path(&spec.base_path, None).await?;
        let mut d = Distribution::new("", spec.base_path.clone(), None);
        spec.apply(&mut d);
        self.create_distribution_record(d).await
    }

    /// Changes a pull-through distribution; a new base path is checked as on create (so it
    /// cannot move while it holds cached paths under it).
    pub async fn update_pull_through_distribution(
        &self,
        id: Uuid,
        f: impl FnOnce(&Distribution) -> Result<PullThroughSpec>,
    ) -> Result<Distribution> {
        let before = self.pull_through_only(id).await?;
        let spec = f(&before)?;
        if before.remote != Some(spec.remote) {
            self.check_pull_through_remote(spec.remote).await?;
        }
        if spec.base_path != before.base_path {
            if self.store().distribution_by_base_path(&spec.base_path).await?.is_some() {
                return Err(ManageError::invalid("base_path", Invalid::Unique));
            }
            self.check_base_path(&spec.base_path, Some(id)).await?;
            // what it cached lies under its base path, which holds it in place (pulpcore's
            // overlap check refuses the move too)
            if let Some(child) = self.store().cached_distributions(id).await?.first() {
                let name = match self.store().distribution(*child).await? {
                    Some(d) => d.name,
                    None => child.to_string(),
                };
                return Err(ManageError::invalid("base_path", Invalid::BasePathOverlaps(name)));
            }
        }
        let mut after = before.clone();
        spec.apply(&mut after);
        self.replace_distribution_record(&before, after).await
    }

    /// Deletes a pull-through distribution and the distributions pulls through it made
    /// (Pulp's cascade); their repositories and remotes stay. Returns the ids deleted, the
    /// cached ones first.
    pub async fn delete_pull_through_distribution(&self, id: Uuid) -> Result<Vec<Uuid>> {
        self.pull_through_only(id).await?;
        let mut gone = Vec::new();
        for child in self.store().cached_distributions(id).await? {
            match self.delete_distribution(child).await {
                Ok(()) | Err(ManageError::NotFound) => gone.push(child),
                Err(e) => return Err(e),
            }
        }
        self.delete_distribution(id).await?;
        gone.push(id);
        // a pull that made a distribution meanwhile: its parent is gone, so is it
        for child in self.store().cached_distributions(id).await? {
            match self.delete_distribution(child).await {
                Ok(()) | Err(ManageError::NotFound) => gone.insert(gone.len() - 1, child),
                Err(e) => return Err(e),
            }
        }
        Ok(gone)
    }

    /// Makes a pull-through distribution the caller may make where a container distribution
    /// may be made; the caller owns it (and the namespace made with it).
    pub async fn create_pull_through_distribution_for(
        &self,
        who: &Identity,
        spec: PullThroughSpec,
    ) -> Result<Distribution> {
        self.may_create_distribution(who, spec.base_path.as_str(), None).await?;
        let ns_name = super::access::namespace_of(spec.base_path.as_str()).to_owned();
        let new_namespace = self.store().namespace_by_name(&ns_name).await?.is_none();
        let d = self.create_pull_through_distribution(spec).await?;
        self.give_creator(who, &ns_name, new_namespace, d.id).await?;
        Ok(d)
    }

    /// Changes a pull-through distribution the caller may change (a new base path: one it
    /// may make).
    pub async fn update_pull_through_distribution_for(
        &self,
        who: &Identity,
        id: Uuid,
        f: impl FnOnce(&Distribution) -> Result<PullThroughSpec>,
    ) -> Result<Distribution> {
        self.authorize(who, Target::Distribution(id), Act::Change).await?;
        let before = self.pull_through_only(id).await?;
        let spec = f(&before)?;
        if spec.base_path != before.base_path {
            self.may_create_distribution(who, spec.base_path.as_str(), None).await?;
        }
        self.update_pull_through_distribution(id, move |_| Ok(spec)).await
    }

    /// Deletes a pull-through distribution the caller may delete, with what it cached.
    pub async fn delete_pull_through_distribution_for(&self, who: &Identity, id: Uuid) -> Result<Vec<Uuid>> {
        self.authorize(who, Target::Distribution(id), Act::Delete).await?;
        self.delete_pull_through_distribution(id).await
    }

    /// Makes a pull-through remote (needs what a container remote needs); the caller owns it.
    pub async fn create_pull_through_remote_for(&self, who: &Identity, mut remote: Remote) -> Result<Remote> {
        remote.kind = RemoteKind::PullThrough;
        self.create_remote_for(who, remote).await
    }
}

impl Catalog<'_> {
    /// A pull-through distribution with the distributions pulls through it made (one query).
    pub async fn pull_through_distribution(&self, id: Uuid) -> Result<PullThroughDistribution> {
        let d = self.manage().pull_through_only(id).await?;
        let children = self.manage().store().cached_distributions(id).await?;
        Ok((d, children))
    }

    /// Pull-through distributions, each with the distributions pulls through it made.
    pub async fn pull_through_distributions(
        &self,
        f: &DistributionFilter,
        page: Page,
    ) -> Result<Listing<PullThroughDistribution>> {
        let f = DistributionFilter {
            pull_through: true,
            ..f.clone()
        };
        let listing = self.distributions(&f, page).await?;
        let mut items = Vec::with_capacity(listing.items.len());
        for (d, _) in listing.items {
            let children = self.manage().store().cached_distributions(d.id).await?;
            items.push((d, children));
        }
        Ok(Listing {
            count: listing.count,
            items,
        })
    }
}

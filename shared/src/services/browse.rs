//! What the web page shows, one call per page: repositories with the distributions serving
//! them, a repository with its versions, a version's tags with their manifests, the
//! distributions, remotes, tasks and schedules. Every call reads through the lookups the management API
//! makes ([`Manage::authorize`], [`Manage::scope`], the [`Catalog`](super::Catalog)) and shows
//! what the caller may view, as the API's lists and reads do: an object the caller may not
//! see is `NotFound`.
//!
//! Costs are bounded by the page: a repository page reads its versions' page, the
//! distributions the caller sees (at most [`MAX_DISTRIBUTIONS`]) and its latest version's
//! first tags; each tag costs one manifest read (shared by tags of one manifest), and the
//! children of indexes at most [`MAX_CHILD_READS`] more per page.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::accounts::{Accounts, Identity};
use super::catalog::{ContentFilter, DistributionFilter, RemoteFilter, TaskFilter};
use super::invalid::ManageError;
use super::manage::Manage;
use super::policy::{Act, Scope, Target};
use crate::domain::{ContentKey, ContentType, DescriptorRef, Digest, ManifestKind};
use crate::store::{
    Distribution, Listing, ManifestRecord, Page, Remote, Repository, RepositoryKind, RepositoryVersion, Task,
};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// The most distributions a page looks through for the ones serving a repository.
pub const MAX_DISTRIBUTIONS: usize = 1000;

/// The most child manifests of indexes one page reads (for their sizes).
pub const MAX_CHILD_READS: usize = 200;

/// A schedule in a list, with the names of the repository and remote it syncs (when they
/// still exist) and the state of its last task (when it is still kept).
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub schedule: crate::store::Schedule,
    pub repository: Option<String>,
    pub remote: Option<String>,
    pub last: Option<crate::store::TaskState>,
}

/// A repository in a list, with the distributions (the caller sees) serving it.
#[derive(Debug, Clone)]
pub struct RepoRow {
    pub repo: Repository,
    pub served_by: Vec<Distribution>,
}

/// The repositories page: synced and pushed repositories, each list paged on its own.
#[derive(Debug, Clone)]
pub struct RepositoriesView {
    pub synced: Listing<RepoRow>,
    pub pushed: Listing<RepoRow>,
}

/// A manifest a tag points at, with what its page shows.
#[derive(Debug, Clone)]
pub struct ManifestView {
    pub record: ManifestRecord,
    /// Bytes a pull fetches for an image or artifact: its config and layers (compressed).
    pub size: u64,
    /// An index's children, each with its own size when it was read.
    pub children: Vec<ChildView>,
}

#[derive(Debug, Clone)]
pub struct ChildView {
    pub descriptor: DescriptorRef,
    /// Config and layers of the child, when its record was read.
    pub size: Option<u64>,
}

/// A tag and the manifest it points at (`None`: the manifest's record is missing).
#[derive(Debug, Clone)]
pub struct TagView {
    pub name: String,
    pub digest: Digest,
    pub manifest: Option<ManifestView>,
}

/// A repository with its versions, the distributions serving it and its latest tags.
#[derive(Debug, Clone)]
pub struct RepositoryView {
    pub repo: Repository,
    /// Its remote, when it has one the caller sees.
    pub remote: Option<Remote>,
    /// Newest first.
    pub versions: Listing<RepositoryVersion>,
    /// The distributions the caller sees that serve it: its latest version, or a pinned one.
    pub distributions: Vec<Distribution>,
    /// The tags of the latest version (the first page).
    pub tags: Listing<TagView>,
}

/// One version: its tags, what it added and removed, the distributions serving it.
#[derive(Debug, Clone)]
pub struct VersionView {
    pub repo: Repository,
    pub version: RepositoryVersion,
    pub tags: Listing<TagView>,
    /// Tags the version added (name and manifest digest).
    pub added: Listing<ContentKey>,
    /// Tags the version removed.
    pub removed: Listing<ContentKey>,
    pub distributions: Vec<Distribution>,
}

/// A distribution with the repository it serves, when the caller sees that repository.
#[derive(Debug, Clone)]
pub struct DistributionRow {
    pub distribution: Distribution,
    pub repo: Option<Repository>,
}

/// The read side of the web page.
pub struct Browse {
    manage: Arc<Manage>,
    accounts: Arc<Accounts>,
}

/// The number of the version a distribution serves now (`None`: nothing).
pub fn served_version(d: &Distribution, repo: &Repository) -> Option<u64> {
    match (d.repository, d.version) {
        (Some(r), Some(n)) if r == repo.id => Some(n),
        (Some(r), None) if r == repo.id => Some(repo.latest_version),
        _ => None,
    }
}

/// What a pull of an image or artifact fetches: its config and layers.
fn image_size(m: &ManifestRecord) -> u64 {
    m.parsed.config.iter().chain(&m.parsed.layers).map(|d| d.size).sum()
}

impl Browse {
    pub fn new(manage: Arc<Manage>, accounts: Arc<Accounts>) -> Self {
        Browse { manage, accounts }
    }

    /// Checks that `who` may view `target`, reading its roles again before refusing (a role
    /// given moments ago through another process counts at once, as on the API); answers
    /// the identity that passed.
    async fn may_view(&self, who: &Identity, target: Target) -> Result<Identity> {
        match self.manage.authorize(who, target, Act::View).await {
            Ok(()) => Ok(who.clone()),
            Err(ManageError::NotFound | ManageError::Forbidden) if who.is_authenticated() && !who.admin => {
                let fresh = self.accounts.refreshed(who).await?.ok_or(ManageError::NotFound)?;
                self.manage.authorize(&fresh, target, Act::View).await?;
                Ok(fresh)
            }
            Err(e) => Err(e),
        }
    }

    /// The distributions `scope` sees (at most [`MAX_DISTRIBUTIONS`]).
    async fn distributions_seen(&self, scope: &Scope) -> Result<Vec<Distribution>> {
        let page = Page {
            limit: MAX_DISTRIBUTIONS,
            offset: 0,
        };
        let listing = self
            .manage
            .catalog(Some(scope))
            .distributions(&DistributionFilter::default(), page)
            .await?;
        Ok(listing.items.into_iter().map(|(d, _)| d).collect())
    }

    /// Synced and pushed repositories `who` sees, each list at its own page.
    pub async fn repositories(&self, who: &Identity, synced: Page, pushed: Page) -> Result<RepositoriesView> {
        let scope = self.manage.scope(who).await?;
        let catalog = self.manage.catalog(Some(&scope));
        let names = Default::default();
        let mirror = catalog.repositories(RepositoryKind::Mirror, &names, synced).await?;
        let push = catalog.repositories(RepositoryKind::Push, &names, pushed).await?;
        let dists = self.distributions_seen(&scope).await?;
        let rows = |l: Listing<Repository>| {
            l.map(|repo| RepoRow {
                served_by: dists
                    .iter()
                    .filter(|d| d.repository == Some(repo.id))
                    .cloned()
                    .collect(),
                repo,
            })
        };
        Ok(RepositoriesView {
            synced: rows(mirror),
            pushed: rows(push),
        })
    }

    /// The repository `id`, with a page of its versions and the first `tags` of its latest.
    pub async fn repository(&self, who: &Identity, id: Uuid, versions: Page, tags: Page) -> Result<RepositoryView> {
        let repo = self.manage.store().repository(id).await?.ok_or(ManageError::NotFound)?;
        let who = self.may_view(who, Target::Repository(id, repo.kind)).await?;
        let scope = self.manage.scope(&who).await?;
        let remote = match repo.remote {
            Some(r) => self.manage.store().remote(r).await?.filter(|r| scope.sees_remote(r)),
            None => None,
        };
        let versions = self
            .manage
            .catalog(None)
            .versions(&repo, &Default::default(), versions)
            .await?;
        let distributions = self
            .distributions_seen(&scope)
            .await?
            .into_iter()
            .filter(|d| d.repository == Some(repo.id))
            .collect();
        let tags = self.tags(&repo, repo.latest_version, tags).await?;
        Ok(RepositoryView {
            repo,
            remote,
            versions,
            distributions,
            tags,
        })
    }

    /// Version `number` of repository `id`: a page of its tags, the first `changes` tags it
    /// added and removed.
    pub async fn version(
        &self,
        who: &Identity,
        id: Uuid,
        number: u64,
        tags: Page,
        changes: Page,
    ) -> Result<VersionView> {
        let repo = self.manage.store().repository(id).await?.ok_or(ManageError::NotFound)?;
        let who = self.may_view(who, Target::Repository(id, repo.kind)).await?;
        let version = self.manage.version(&repo, number).await?;
        let catalog = self.manage.catalog(None);
        let mut added = ContentFilter::new(ContentType::Tag);
        added.added_in = Some((id, number));
        let mut removed = ContentFilter::new(ContentType::Tag);
        removed.removed_in = Some((id, number));
        let added = catalog.content(&added, changes).await?.map(|u| u.key);
        let removed = catalog.content(&removed, changes).await?.map(|u| u.key);
        let scope = self.manage.scope(&who).await?;
        let distributions = self
            .distributions_seen(&scope)
            .await?
            .into_iter()
            .filter(|d| served_version(d, &repo) == Some(number))
            .collect();
        let tags = self.tags(&repo, number, tags).await?;
        Ok(VersionView {
            repo,
            version,
            tags,
            added,
            removed,
            distributions,
        })
    }

    /// A page of the tags of version `number`, each with its manifest.
    async fn tags(&self, repo: &Repository, number: u64, page: Page) -> Result<Listing<TagView>> {
        let mut filter = ContentFilter::new(ContentType::Tag);
        filter.in_version = Some((repo.id, number));
        let units = self.manage.catalog(None).content(&filter, page).await?;
        let store = self.manage.store();
        let mut records: HashMap<Digest, Option<ManifestRecord>> = HashMap::new();
        let mut child_reads = 0;
        let mut items = Vec::with_capacity(units.items.len());
        for u in units.items {
            let ContentKey::Tag { name, manifest } = u.key else {
                continue;
            };
            if let Entry::Vacant(e) = records.entry(manifest.clone()) {
                e.insert(store.manifest(&manifest).await?);
            }
            let view = match records.get(&manifest).cloned().flatten() {
                None => None,
                Some(record) => {
                    let mut children = Vec::new();
                    if record.parsed.kind == ManifestKind::Index {
                        for c in &record.parsed.manifests {
                            if child_reads < MAX_CHILD_READS {
                                if let Entry::Vacant(e) = records.entry(c.digest.clone()) {
                                    child_reads += 1;
                                    e.insert(store.manifest(&c.digest).await?);
                                }
                            }
                            let size = records.get(&c.digest).and_then(|r| r.as_ref()).map(image_size);
                            children.push(ChildView {
                                descriptor: c.clone(),
                                size,
                            });
                        }
                    }
                    Some(ManifestView {
                        size: image_size(&record),
                        record,
                        children,
                    })
                }
            };
            items.push(TagView {
                name: name.as_str().to_owned(),
                digest: manifest,
                manifest: view,
            });
        }
        Ok(Listing {
            count: units.count,
            items,
        })
    }

    /// A page of the distributions `who` sees, each with its repository when it sees that.
    pub async fn distributions(&self, who: &Identity, page: Page) -> Result<Listing<DistributionRow>> {
        let scope = self.manage.scope(who).await?;
        let listing = self
            .manage
            .catalog(Some(&scope))
            .distributions(&DistributionFilter::default(), page)
            .await?;
        let mut repos: HashMap<Uuid, Option<Repository>> = HashMap::new();
        let mut items = Vec::with_capacity(listing.items.len());
        for (d, _) in listing.items {
            let repo = match d.repository {
                Some(id) => {
                    if let Entry::Vacant(e) = repos.entry(id) {
                        let r = self.manage.store().repository(id).await?;
                        e.insert(r.filter(|r| scope.sees_repository(r)));
                    }
                    repos.get(&id).cloned().flatten()
                }
                None => None,
            };
            items.push(DistributionRow { distribution: d, repo });
        }
        Ok(Listing {
            count: listing.count,
            items,
        })
    }

    /// A page of the remotes `who` sees.
    pub async fn remotes(&self, who: &Identity, page: Page) -> Result<Listing<Remote>> {
        let scope = self.manage.scope(who).await?;
        self.manage
            .catalog(Some(&scope))
            .remotes(&RemoteFilter::default(), page)
            .await
    }

    /// A page of the schedules `who` sees, by name, with the names of what each syncs and the
    /// state of its last task: per schedule at most three reads (the schedules are few).
    pub async fn schedules(&self, who: &Identity, page: Page) -> Result<Listing<ScheduleRow>> {
        let f = super::ScheduleFilter {
            order: super::ScheduleOrder::Name,
            ..Default::default()
        };
        let list = self.manage.schedules_for(who, &f, page).await?;
        let store = self.manage.store();
        let mut items = Vec::with_capacity(list.items.len());
        for schedule in list.items {
            let (mut repository, mut remote) = (None, None);
            if let crate::store::ScheduledWork::Sync {
                repository: r,
                remote: m,
                ..
            } = &schedule.work
            {
                repository = store.repository(*r).await?.map(|r| r.name);
                remote = store.remote(*m).await?.map(|m| m.name);
            }
            let last = match schedule.last_task {
                Some(t) => store.task(t).await?.map(|t| t.state),
                None => None,
            };
            items.push(ScheduleRow {
                schedule,
                repository,
                remote,
                last,
            });
        }
        Ok(Listing {
            items,
            count: list.count,
        })
    }

    /// A page of the tasks `who` sees (the ones it started; a superuser sees all), newest
    /// first.
    pub async fn tasks(&self, who: &Identity, page: Page) -> Result<Listing<Task>> {
        let scope = self.manage.scope(who).await?;
        self.manage
            .catalog(Some(&scope))
            .tasks(&TaskFilter::default(), |_| String::new(), page)
            .await
    }

    /// The task `id`, when `who` sees it.
    pub async fn task(&self, who: &Identity, id: Uuid) -> Result<Task> {
        self.may_view(who, Target::Task(id)).await?;
        self.manage.task(id).await
    }
}

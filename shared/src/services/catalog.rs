//! The read side of the management API: lists with their filters and one page at a time,
//! and the lookups a description needs. Which units a content filter selects, which versions
//! hold a unit, which tasks touch a resource: these rules live here; the store reads the
//! page, and the HTTP layer parses filters from the query string and renders.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, over the store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::invalid::ManageError;
use super::manage::Manage;
use super::policy::Scope;
use crate::domain::{ContentKey, ContentType, LabelSelect};
use crate::store::{
    content_id, ContentOrder, ContentSet, ContentUnit, Distribution, Listing, Page, Remote, Repository, RepositoryKind,
    RepositoryVersion, ResourceRef, Store, Task, TaskState,
};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// The common filters on a named resource (`None` filters nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFilter {
    pub name: Option<String>,
    pub name_in: Option<Vec<String>>,
    pub name_contains: Option<String>,
    /// Case-insensitive.
    pub name_icontains: Option<String>,
    pub name_startswith: Option<String>,
    /// The resource's id is one of these (references already resolved to ids).
    pub ids: Option<Vec<Uuid>>,
    /// Also one of these (a second list of ids, both must hold).
    pub also_ids: Option<Vec<Uuid>>,
    /// Case-insensitive.
    pub name_iexact: Option<String>,
    /// Case-insensitive.
    pub name_istartswith: Option<String>,
    /// The name matches somewhere.
    pub name_regex: Option<NamePattern>,
    pub name_iregex: Option<NamePattern>,
    /// The resource's labels satisfy this selection (`pulp_label_select`).
    pub labels: Option<LabelSelect>,
}

/// A regular expression a name must match somewhere (`name__regex`, `name__iregex`), compiled
/// once when the filter is read.
#[derive(Debug, Clone)]
pub struct NamePattern {
    re: regex::Regex,
    case_insensitive: bool,
}

impl NamePattern {
    /// The compiled pattern, or why it is not one (too large counts: its compiled form is
    /// bounded).
    pub fn new(pattern: &str, case_insensitive: bool) -> Result<Self, String> {
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(NamePattern { re, case_insensitive })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.re.is_match(name)
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.re.as_str() == other.re.as_str() && self.case_insensitive == other.case_insensitive
    }
}

impl Eq for NamePattern {}

impl NameFilter {
    pub fn matches(&self, name: &str, id: Uuid) -> bool {
        let lower = || name.to_lowercase();
        self.name_iexact.as_ref().is_none_or(|n| n.to_lowercase() == lower())
            && self
                .name_istartswith
                .as_ref()
                .is_none_or(|n| lower().starts_with(&n.to_lowercase()))
            && self.name_regex.as_ref().is_none_or(|p| p.is_match(name))
            && self.name_iregex.as_ref().is_none_or(|p| p.is_match(name))
            && self.name.as_ref().is_none_or(|n| n == name)
            && self.name_in.as_ref().is_none_or(|ns| ns.iter().any(|x| x == name))
            && self.name_contains.as_ref().is_none_or(|c| name.contains(c.as_str()))
            && self
                .name_icontains
                .as_ref()
                .is_none_or(|c| name.to_lowercase().contains(&c.to_lowercase()))
            && self
                .name_startswith
                .as_ref()
                .is_none_or(|c| name.starts_with(c.as_str()))
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&id))
            && self.also_ids.as_ref().is_none_or(|ids| ids.contains(&id))
    }

    /// Whether `labels` satisfy the label selection.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.as_ref().is_none_or(|l| l.matches(labels))
    }
}

/// An inclusive range of times (`…__gte`, `…__lte`; `None` bounds nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Whether `t` is in the range; a missing time is in an unbounded range only.
    pub fn holds(&self, t: Option<&DateTime<Utc>>) -> bool {
        match t {
            Some(t) => self.from.is_none_or(|f| *t >= f) && self.to.is_none_or(|x| *t <= x),
            None => self.from.is_none() && self.to.is_none(),
        }
    }
}

/// Filters on remotes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteFilter {
    pub names: NameFilter,
    /// Last updated in this range (`pulp_last_updated__gte`, `__lte`).
    pub updated: TimeRange,
    /// Of this kind only.
    pub kind: crate::store::RemoteKind,
}

/// Filters on distributions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistributionFilter {
    pub names: NameFilter,
    pub base_path: Option<String>,
    pub base_path_in: Option<Vec<String>>,
    pub base_path_contains: Option<String>,
    /// Case-insensitive.
    pub base_path_icontains: Option<String>,
    /// In the namespace of this name.
    pub namespace_name: Option<String>,
    /// Serving the latest version of this repository (`Some(None)`: of a repository that
    /// cannot exist, so nothing matches).
    pub repository: Option<Option<(Uuid, RepositoryKind)>>,
    /// Pull-through distributions (else container distributions).
    pub pull_through: bool,
}

/// Which resources of a task a resource filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskResources {
    /// Reserved exclusively or shared.
    Any,
    Exclusive,
    Shared,
    Created,
}

/// Filters on tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub names: NameFilter,
    pub states: Option<Vec<TaskState>>,
    /// Each filter holds when one of its non-empty values names one of the task's resources
    /// (or when all its values are empty).
    pub resources: Vec<(TaskResources, Vec<String>)>,
    pub logging_cid: Option<String>,
    pub logging_cid_contains: Option<String>,
    pub started: TimeRange,
    pub finished: TimeRange,
    /// A worker, parent task or task group was asked for: Berth's tasks have none, so none
    /// matches.
    pub nothing: bool,
}

/// How a resource is referred to in a task filter's values (its href on the API).
pub type ResourceName = fn(&ResourceRef) -> String;

impl TaskFilter {
    fn matches(&self, t: &Task, name_of: ResourceName) -> bool {
        self.states.as_ref().is_none_or(|s| s.contains(&t.state))
            && self.names.matches(&t.name, t.id)
            && self.resources.iter().all(|(which, wanted)| {
                let list: Vec<&ResourceRef> = match which {
                    TaskResources::Any => t.reserved_resources.iter().chain(&t.shared_resources).collect(),
                    TaskResources::Exclusive => t.reserved_resources.iter().collect(),
                    TaskResources::Shared => t.shared_resources.iter().collect(),
                    TaskResources::Created => t.created_resources.iter().collect(),
                };
                names_one_of(wanted, &list, name_of)
            })
            && self.logging_cid.as_ref().is_none_or(|x| *x == t.logging_cid)
            && self
                .logging_cid_contains
                .as_ref()
                .is_none_or(|x| t.logging_cid.contains(x.as_str()))
            && self.started.holds(t.started.as_ref())
            && self.finished.holds(t.finished.as_ref())
            && !self.nothing
    }
}

/// Whether a non-empty value of `wanted` names one of `list`: it ends with a resource's name,
/// or contains the name's last 36 characters before its final one (the id, in an href).
fn names_one_of(wanted: &[String], list: &[&ResourceRef], name_of: ResourceName) -> bool {
    let names: Vec<String> = list.iter().map(|r| name_of(r)).collect();
    wanted.iter().filter(|w| !w.is_empty()).any(|w| {
        names.iter().any(|h| {
            let tail = h
                .get(h.len().saturating_sub(37)..h.len().saturating_sub(1))
                .unwrap_or("");
            w.ends_with(h.as_str()) || w.contains(tail)
        })
    }) || wanted.iter().all(|w| w.is_empty())
}

/// Filters on a repository's versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionFilter {
    pub number: Option<u64>,
    pub number_gt: Option<u64>,
    pub number_gte: Option<u64>,
    pub number_lt: Option<u64>,
    pub number_lte: Option<u64>,
    /// Holding the content unit of this id.
    pub content: Option<Uuid>,
    pub oldest_first: bool,
}

/// Filters on content units of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentFilter {
    pub ty: ContentType,
    /// In this version (repository, number).
    pub in_version: Option<(Uuid, u64)>,
    /// Added by this version.
    pub added_in: Option<(Uuid, u64)>,
    /// Removed by this version.
    pub removed_in: Option<(Uuid, u64)>,
    /// The unit's digest is one of these (for a tag, its manifest's digest).
    pub digests: Option<Vec<String>>,
    /// A tag's name is one of these (other units pass).
    pub names: Option<Vec<String>>,
    /// The unit's id is one of these.
    pub ids: Option<Vec<Uuid>>,
    /// A stored manifest of one of these media types.
    pub media_types: Option<Vec<String>>,
    /// The unit's labels satisfy this selection; Berth keeps no labels on content, so a
    /// selection holds when each of its terms holds for no labels (`!key`).
    pub labels: Option<LabelSelect>,
    /// A manifest that is bootable or a flatpak was asked for: Berth reads no image config
    /// labels, so none is (as its descriptions say).
    pub nothing: bool,
}

impl ContentFilter {
    pub fn new(ty: ContentType) -> Self {
        ContentFilter {
            ty,
            in_version: None,
            added_in: None,
            removed_in: None,
            digests: None,
            names: None,
            ids: None,
            media_types: None,
            labels: None,
            nothing: false,
        }
    }

    /// The version whose content this filter asks for, when it asks for nothing else.
    fn whole_version(&self) -> Option<(Uuid, u64)> {
        let only = ContentFilter {
            in_version: self.in_version,
            ..ContentFilter::new(self.ty)
        };
        (*self == only).then_some(self.in_version).flatten()
    }

    fn keeps(&self, k: &ContentKey) -> bool {
        let digest = match k {
            ContentKey::Blob(d) | ContentKey::Manifest(d) | ContentKey::Signature(d) => d.as_str(),
            ContentKey::Tag { manifest, .. } => manifest.as_str(),
        };
        let by_name = match (&self.names, k) {
            (Some(ns), ContentKey::Tag { name, .. }) => ns.iter().any(|x| x == name.as_str()),
            _ => true,
        };
        !self.nothing
            && self.labels.as_ref().is_none_or(|l| l.matches(&BTreeMap::new()))
            && self.digests.as_ref().is_none_or(|ds| ds.iter().any(|x| x == digest))
            && by_name
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&content_id(k)))
    }
}

/// Filters on content units of every type together (Pulp's generic content list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnyContentFilter {
    /// Of one of these types (of every type when `None`).
    pub types: Option<Vec<ContentType>>,
    /// In this version (repository, number).
    pub in_version: Option<(Uuid, u64)>,
    /// Added by this version.
    pub added_in: Option<(Uuid, u64)>,
    /// Removed by this version.
    pub removed_in: Option<(Uuid, u64)>,
    /// The unit's id is in every one of these lists.
    pub ids: Vec<Vec<Uuid>>,
    pub order: ContentOrder,
}

/// The sets a content filter restricts a list to.
fn content_sets(
    in_version: Option<(Uuid, u64)>,
    added_in: Option<(Uuid, u64)>,
    removed_in: Option<(Uuid, u64)>,
) -> Vec<ContentSet> {
    let mut sets = Vec::new();
    if let Some((repo, n)) = in_version {
        sets.push(ContentSet::InVersion(repo, n));
    }
    if let Some((repo, n)) = added_in {
        sets.push(ContentSet::AddedIn(repo, n));
    }
    if let Some((repo, n)) = removed_in {
        sets.push(ContentSet::RemovedIn(repo, n));
    }
    sets
}

/// The read side of the management service.
pub struct Catalog<'a> {
    manage: &'a Manage,
    /// What the caller sees (`None`: everything).
    scope: Option<&'a Scope>,
}

impl Manage {
    /// Lists and lookups for the management API, showing what `scope` sees (`None`:
    /// everything).
    pub fn catalog<'a>(&'a self, scope: Option<&'a Scope>) -> Catalog<'a> {
        Catalog { manage: self, scope }
    }
}

impl Catalog<'_> {
    fn store(&self) -> &Store {
        self.manage.store()
    }

    pub(super) fn manage(&self) -> &Manage {
        self.manage
    }

    /// Whether the lists need no filtering for the caller.
    fn sees_all(&self) -> bool {
        self.scope.is_none_or(Scope::all)
    }

    pub async fn repositories(&self, kind: RepositoryKind, f: &NameFilter, page: Page) -> Result<Listing<Repository>> {
        if *f == NameFilter::default() && self.sees_all() {
            return Ok(self.store().repository_range(kind, page).await?);
        }
        Ok(self
            .store()
            .repository_page(
                kind,
                |name, id| f.matches(name, id),
                |r| f.matches_labels(&r.pulp_labels) && self.scope.is_none_or(|s| s.sees_repository(r)),
                page,
            )
            .await?)
    }

    pub async fn remotes(&self, f: &RemoteFilter, page: Page) -> Result<Listing<Remote>> {
        let keep = |r: &Remote| {
            r.kind == f.kind
                && f.names.matches(&r.name, r.id)
                && f.names.matches_labels(&r.pulp_labels)
                && f.updated.holds(Some(&r.updated))
                && self.scope.is_none_or(|s| s.sees_remote(r))
        };
        Ok(self.store().remote_page(keep, page).await?)
    }

    /// The kind of the repository a distribution serves, when it exists.
    async fn served_kind(&self, d: &Distribution) -> Result<Option<RepositoryKind>> {
        Ok(match d.repository {
            Some(id) => self.store().repository(id).await?.map(|r| r.kind),
            None => None,
        })
    }

    /// A distribution and the kind of the repository it serves.
    pub async fn distribution(&self, id: Uuid) -> Result<(Distribution, Option<RepositoryKind>)> {
        let d = self.manage.container_distribution(id).await?;
        let kind = self.served_kind(&d).await?;
        Ok((d, kind))
    }

    /// Distributions, each with the kind of the repository it serves.
    pub async fn distributions(
        &self,
        f: &DistributionFilter,
        page: Page,
    ) -> Result<Listing<(Distribution, Option<RepositoryKind>)>> {
        let serving = match f.repository {
            None => None,
            Some(None) => Some(None),
            Some(Some((id, kind))) => {
                let exists = self.store().repository(id).await?.is_some_and(|r| r.kind == kind);
                Some(exists.then_some(id))
            }
        };
        let keep = |d: &Distribution| {
            let bp = d.base_path.as_str();
            d.pull_through == f.pull_through
                && f.names.matches(&d.name, d.id)
                && f.names.matches_labels(&d.pulp_labels)
                && f.base_path.as_ref().is_none_or(|x| x == bp)
                && f.base_path_in.as_ref().is_none_or(|xs| xs.iter().any(|x| x == bp))
                && f.base_path_contains.as_ref().is_none_or(|x| bp.contains(x.as_str()))
                && f.namespace_name.as_ref().is_none_or(|x| x == d.namespace_name())
                && f.base_path_icontains
                    .as_ref()
                    .is_none_or(|x| bp.to_lowercase().contains(&x.to_lowercase()))
                && serving.is_none_or(|s| s.is_some() && d.repository == s && d.version.is_none())
                && self.scope.is_none_or(|s| s.sees_distribution(d))
        };
        let listing = if *f == DistributionFilter::default()
            && self.sees_all()
            && !self.store().has_pull_through_distributions().await?
        {
            self.store().distribution_range(page).await?
        } else {
            self.store().distribution_page(keep, page).await?
        };
        let mut items = Vec::with_capacity(listing.items.len());
        for d in listing.items {
            let kind = self.served_kind(&d).await?;
            items.push((d, kind));
        }
        Ok(Listing {
            count: listing.count,
            items,
        })
    }

    /// Tasks, newest first; `name_of` names a resource the way the filter's values do.
    pub async fn tasks(&self, f: &TaskFilter, name_of: ResourceName, page: Page) -> Result<Listing<Task>> {
        if *f == TaskFilter::default() && self.sees_all() {
            return Ok(self.store().task_range(page).await?);
        }
        Ok(self
            .store()
            .task_page(
                |t| f.matches(t, name_of) && self.scope.is_none_or(|s| s.sees_task(t)),
                page,
            )
            .await?)
    }

    /// A repository's versions, newest first unless the filter asks otherwise.
    pub async fn versions(
        &self,
        repo: &Repository,
        f: &VersionFilter,
        page: Page,
    ) -> Result<Listing<RepositoryVersion>> {
        if f.content.is_none() {
            let lo = [f.number, f.number_gte, f.number_gt.map(|x| x.saturating_add(1))]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(0);
            let hi = [f.number, f.number_lte, f.number_lt.map(|x| x.saturating_sub(1))]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX);
            let empty = f.number_lt == Some(0) || lo > hi;
            let (lo, hi) = if empty { (1, 0) } else { (lo, hi) };
            if let Some(listing) = self
                .store()
                .version_range_page(repo, lo, hi, f.oldest_first, page)
                .await?
            {
                return Ok(listing);
            }
        }
        let holding = match f.content {
            None => None,
            Some(id) => Some(match self.store().content_by_id(id).await? {
                Some(k) => self.store().memberships(repo.id, &k).await?,
                None => Vec::new(),
            }),
        };
        let keep = |v: &RepositoryVersion| {
            let n = v.number;
            f.number.is_none_or(|x| n == x)
                && f.number_gt.is_none_or(|x| n > x)
                && f.number_gte.is_none_or(|x| n >= x)
                && f.number_lt.is_none_or(|x| n < x)
                && f.number_lte.is_none_or(|x| n <= x)
                && holding.as_ref().is_none_or(|ms| ms.iter().any(|m| m.in_version(n)))
        };
        Ok(self.store().version_page(repo, keep, f.oldest_first, page).await?)
    }

    /// Content units: of a version, or added or removed by one (every unit in all that are
    /// given), or every unit of the type when none is.
    pub async fn content(&self, f: &ContentFilter, page: Page) -> Result<Listing<ContentUnit>> {
        if !self.sees_all() {
            let named = [f.in_version, f.added_in, f.removed_in];
            if named.iter().all(Option::is_none) {
                let keep = |u: &ContentUnit| {
                    f.keeps(&u.key)
                        && f.media_types
                            .as_ref()
                            .is_none_or(|ts| u.manifest.as_ref().is_some_and(|m| ts.contains(&m.parsed.media_type)))
                };
                return self.visible_content(&[f.ty], keep, page).await;
            }
            if !self.sees_repositories(named.iter().flatten().map(|(r, _)| *r)).await? {
                return Ok(page.cut(Vec::new()));
            }
        }
        if let Some((repo, number)) = f.whole_version() {
            return Ok(match self.store().repository(repo).await? {
                Some(repo) => self.store().version_content_page(&repo, number, f.ty, page).await?,
                None => Listing {
                    count: 0,
                    items: Vec::new(),
                },
            });
        }
        if *f == ContentFilter::new(f.ty) {
            return Ok(self.store().all_content_page(&[f.ty], page).await?);
        }
        let sets = content_sets(f.in_version, f.added_in, f.removed_in);
        Ok(self
            .store()
            .content_page(f.ty, &sets, |k| f.keeps(k), f.media_types.as_deref(), page)
            .await?)
    }

    /// Content units of every type (or of the types asked for) together, selected as
    /// [`Catalog::content`] selects those of one type: each type's units are the ones its own
    /// list shows.
    pub async fn any_content(&self, f: &AnyContentFilter, page: Page) -> Result<Listing<ContentUnit>> {
        let sets = content_sets(f.in_version, f.added_in, f.removed_in);
        let types: Vec<ContentType> = ContentType::ALL
            .into_iter()
            .filter(|t| f.types.as_ref().is_none_or(|ts| ts.contains(t)))
            .collect();
        if !self.sees_all() {
            let named = [f.in_version, f.added_in, f.removed_in];
            if named.iter().all(Option::is_none) {
                let keep = |u: &ContentUnit| {
                    f.ids.is_empty() || {
                        let id = content_id(&u.key);
                        f.ids.iter().all(|ids| ids.contains(&id))
                    }
                };
                return self.visible_content(&types, keep, page).await;
            }
            if !self.sees_repositories(named.iter().flatten().map(|(r, _)| *r)).await? {
                return Ok(page.cut(Vec::new()));
            }
        }
        if sets.is_empty() && f.ids.is_empty() && f.order == ContentOrder::Type {
            return Ok(self.store().all_content_page(&types, page).await?);
        }
        let keep = |k: &ContentKey| {
            f.ids.is_empty() || {
                let id = content_id(k);
                f.ids.iter().all(|ids| ids.contains(&id))
            }
        };
        Ok(self
            .store()
            .mixed_content_page(&types, &sets, keep, f.order, page)
            .await?)
    }

    /// Whether the caller sees every one of these repositories.
    async fn sees_repositories(&self, ids: impl Iterator<Item = Uuid>) -> Result<bool> {
        for id in ids {
            let seen = match (self.scope, self.store().repository(id).await?) {
                (Some(s), Some(r)) => s.sees_repository(&r),
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if !seen {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The units of `types` in the latest version of any repository the caller sees (a list
    /// with no version named, for a caller who does not see everything), by type and key.
    async fn visible_content(
        &self,
        types: &[ContentType],
        keep: impl Fn(&ContentUnit) -> bool,
        page: Page,
    ) -> Result<Listing<ContentUnit>> {
        let mut units = BTreeMap::new();
        for repo in self.store().repositories().await? {
            if !self.scope.is_none_or(|s| s.sees_repository(&repo)) {
                continue;
            }
            for ty in types {
                let listing = self
                    .store()
                    .version_content_page(&repo, repo.latest_version, *ty, Page::ALL)
                    .await?;
                for u in listing.items {
                    if keep(&u) {
                        units.entry((ty.prefix(), u.key.encode())).or_insert(u);
                    }
                }
            }
        }
        Ok(page.cut(units.into_values()))
    }

    /// One content unit of type `ty` by id.
    pub async fn content_unit(&self, id: Uuid, ty: ContentType) -> Result<ContentUnit> {
        self.store().content_unit(id, ty).await?.ok_or(ManageError::NotFound)
    }
}

//! Namespaces, as Pulp's container plugin has them: the first segment of distributions' base
//! paths. The store makes one with the first distribution in it (created through the API or by
//! a push); the API lists, shows, creates and deletes them, and deleting one deletes every
//! distribution in it and the push repositories they serve, as Pulp cascades it. Also the
//! order of the lists of namespaces and workers (Pulp's `ordering`).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, over the store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::catalog::NameFilter;
use super::invalid::{Invalid, ManageError};
use super::manage::Manage;
use crate::ports::StoreError;
use crate::store::{Listing, Namespace, NamespaceRemoval, ObjectKind, ObjectRef, Page, RepositoryKind, ResourceRef};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// A field a list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Id,
    Created,
    Updated,
    LastHeartbeat,
    /// Another field of the resource, by its API name.
    Field(&'static str),
}

/// A value items are compared by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Text(String),
    Id(Uuid),
    Time(DateTime<Utc>),
}

/// The order of a list: keys in turn, each descending when its flag says (Pulp's `ordering`,
/// `-name`). Empty keeps the store's order (by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sort(pub Vec<(SortKey, bool)>);

impl Sort {
    /// Orders `items` by the keys, reading each item's value of a key with `value` (stable:
    /// items equal in every key keep their order).
    pub fn order<T>(&self, items: &mut [T], value: impl Fn(&T, SortKey) -> SortValue) {
        if self.0.is_empty() {
            return;
        }
        items.sort_by(|a, b| {
            for (key, desc) in &self.0 {
                let o = value(a, *key).cmp(&value(b, *key));
                let o = if *desc { o.reverse() } else { o };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
}

/// Filters on namespaces (Pulp's name lookups, hrefs and PRNs) and their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFilter {
    pub names: NameFilter,
    pub sort: Sort,
}

fn namespace_value(ns: &Namespace, key: SortKey) -> SortValue {
    match key {
        SortKey::Name => SortValue::Text(ns.name.clone()),
        SortKey::Id => SortValue::Id(ns.id),
        SortKey::Created => SortValue::Time(ns.created),
        SortKey::Updated | SortKey::LastHeartbeat | SortKey::Field(_) => SortValue::Time(ns.updated),
    }
}

/// How many rounds a namespace delete takes at most: each removes the distributions it finds,
/// and a round finds more only when they are created while it runs.
const DELETE_ROUNDS: usize = 8;

impl Manage {
    /// Namespaces the filter accepts, in its order (by name when it gives none). One scan of
    /// the namespaces.
    pub async fn namespaces(
        &self,
        f: &NamespaceFilter,
        page: Page,
        scope: Option<&super::Scope>,
    ) -> Result<Listing<Namespace>> {
        let mut all: Vec<Namespace> = self
            .store()
            .namespaces()
            .await?
            .into_iter()
            .filter(|ns| f.names.matches(&ns.name, ns.id))
            .filter(|ns| scope.is_none_or(|s| s.sees_namespace(ns.id)))
            .collect();
        f.sort.order(&mut all, namespace_value);
        Ok(page.cut(all))
    }

    pub async fn namespace(&self, id: Uuid) -> Result<Namespace> {
        self.store().namespace(id).await?.ok_or(ManageError::NotFound)
    }

    /// Creates a namespace; its name must be free.
    pub async fn create_namespace(&self, name: &str, pulp_labels: BTreeMap<String, String>) -> Result<Namespace> {
        let mut ns = Namespace::new(name);
        ns.pulp_labels = pulp_labels;
        match self.store().create_namespace(&ns).await {
            Ok(()) => Ok(ns),
            Err(StoreError::Conflict(_)) => Err(ManageError::invalid("name", Invalid::Unique)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a namespace with every distribution in it and the push repositories those
    /// serve (as deleting each distribution does). Returns what it deleted, the namespace last.
    /// Distributions created in the namespace while it runs are deleted too; `Busy` if they
    /// keep coming.
    pub async fn delete_namespace(&self, id: Uuid) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        for _ in 0..DELETE_ROUNDS {
            let held = match self.store().remove_namespace(id).await {
                Ok(NamespaceRemoval::Removed) => {
                    self.drop_roles(ObjectRef::new(ObjectKind::Namespace, id)).await?;
                    deleted.push(ResourceRef::Namespace { id });
                    return Ok(deleted);
                }
                Ok(NamespaceRemoval::Holds(held)) => held,
                // removed by another request while this one deleted what it held
                Err(StoreError::NotFound) if !deleted.is_empty() => return Ok(deleted),
                Err(StoreError::Conflict(_)) => return Err(ManageError::Busy),
                Err(e) => return Err(e.into()),
            };
            for d in held {
                let push = match d.repository {
                    Some(r) => self
                        .store()
                        .repository(r)
                        .await?
                        .filter(|r| r.kind == RepositoryKind::Push),
                    None => None,
                };
                match self.delete_distribution(d.id).await {
                    Ok(()) | Err(ManageError::NotFound) => {}
                    Err(e) => return Err(e),
                }
                deleted.push(ResourceRef::Distribution { id: d.id });
                if let Some(r) = push {
                    deleted.push(ResourceRef::Repository { id: r.id, kind: r.kind });
                }
            }
        }
        Err(ManageError::Busy)
    }
}

//! Who may do what on the registry, from roles as pulp_container decides it: token grants
//! (the intersection of what was asked and what the caller may do), the same rules for Basic
//! auth when tokens are off, and the catalog.
//!
//! - **Pull** `<path>`: a public distribution, anyone. A private one: `pull_containerdistribution`
//!   on it, or `namespace_pull_containerdistribution` on its namespace (either also everywhere).
//!   No distribution: `namespace_view_containerdistribution` on the namespace when it exists, else
//!   what creating the namespace needs, so a caller learns only that a name is free that it may
//!   take; anonymous callers cannot tell a private distribution from a missing one.
//! - **Push** (and delete) `<path>`: a distribution: `push_containerdistribution` on it, or
//!   `namespace_push_containerdistribution` on its namespace. A new distribution in a namespace
//!   that exists: `namespace_add_containerdistribution` on the namespace. A new namespace:
//!   `add_containernamespace` everywhere (the namespace creator role), or the namespace is the
//!   caller's user name. Pushes into mirrors are refused later with DENIED.
//! - **The catalog**: everyone; it lists exactly what the caller may pull.
//!
//! A superuser may do everything.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use super::accounts::Identity;
use super::tokens::{Access, Tokens};
use crate::domain::RepoName;
use crate::ports::StoreError;
use crate::store::{Distribution, ObjectKind, ObjectRef, Store};

/// How the registry authenticates.
#[derive(Clone, Default)]
pub enum AuthMode {
    /// No checks at all (tests and embedding only; the binary never uses it).
    #[default]
    Open,
    /// Basic auth on the registry, anonymous reads of public content (token auth off).
    Basic,
    /// Bearer tokens from `/token` (the default of the binary).
    Token(Arc<Tokens>),
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthMode::Open => "Open",
            AuthMode::Basic => "Basic",
            AuthMode::Token(_) => "Token",
        })
    }
}

/// The first segment of a base path: its namespace's name.
pub fn namespace_of(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Whether `who` has `container.<base>` on distribution `d` (or everywhere), or
/// `container.namespace_<base>` on namespace `ns` (or everywhere).
pub fn on_namespace_or_object(who: &Identity, base: &str, d: Uuid, ns: Option<Uuid>) -> bool {
    who.has(
        &format!("container.{base}"),
        Some(ObjectRef::new(ObjectKind::Distribution, d)),
    ) || who.has(
        &format!("container.namespace_{base}"),
        ns.map(|n| ObjectRef::new(ObjectKind::Namespace, n)),
    )
}

/// What a caller sees in the catalog: public distributions, and private ones it may pull.
pub struct CatalogView {
    all: bool,
    namespaces: HashSet<String>,
    distributions: HashSet<Uuid>,
}

impl CatalogView {
    pub fn sees(&self, d: &Distribution) -> bool {
        self.all
            || !d.private
            || self.distributions.contains(&d.id)
            || self.namespaces.contains(namespace_of(d.base_path.as_str()))
    }
}

pub struct AccessRules {
    store: Store,
    mirrors: crate::domain::MirrorRoutes,
}

impl AccessRules {
    pub fn new(store: Store) -> Self {
        AccessRules {
            store,
            mirrors: Default::default(),
        }
    }

    /// Lets pulls of names no distribution serves reach the pull-through distributions
    /// `mirrors` routes them to.
    pub fn with_mirrors(mut self, mirrors: crate::domain::MirrorRoutes) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// Whether `who` may pull through `dist`, a pull-through distribution.
    async fn may_pull_through(&self, who: &Identity, dist: &crate::store::Distribution) -> Result<bool, StoreError> {
        if !dist.private {
            return Ok(true);
        }
        let ns = self.namespace_id(dist.base_path.as_str()).await?;
        Ok(on_namespace_or_object(who, "pull_containerdistribution", dist.id, ns))
    }

    /// A name routed to a mirror (see `MirrorRoutes`): which route a pull takes is known only
    /// with its request, so every pull-through distribution a route leads to must allow it.
    async fn may_pull_mirrored(&self, who: &Identity) -> Result<bool, StoreError> {
        let mut any = false;
        for base in self.mirrors.targets() {
            match self.store.distribution_by_base_path(base).await? {
                Some(d) if d.pull_through => {
                    if !self.may_pull_through(who, &d).await? {
                        return Ok(false);
                    }
                    any = true;
                }
                _ => {}
            }
        }
        Ok(any)
    }

    async fn namespace_id(&self, path: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.store.namespace_by_name(namespace_of(path)).await?.map(|n| n.id))
    }

    /// Whether `who` may make namespace `name`.
    pub fn may_create_namespace(who: &Identity, name: &str) -> bool {
        who.has_global("container.add_containernamespace") || who.user.as_deref() == Some(name)
    }

    /// Whether `who` may pull `name`.
    pub async fn may_pull(&self, who: &Identity, name: &RepoName) -> Result<bool, StoreError> {
        if who.admin {
            return Ok(true);
        }
        match self.store.distribution_by_base_path(name).await? {
            Some(d) if !d.private => Ok(true),
            Some(d) => {
                let ns = self.namespace_id(name.as_str()).await?;
                Ok(on_namespace_or_object(who, "pull_containerdistribution", d.id, ns))
            }
            None => match self.store.pull_through_of(name).await? {
                // a path not cached yet: as its pull-through distribution allows
                Some((d, _)) => self.may_pull_through(who, &d).await,
                None if !self.mirrors.is_empty() && self.may_pull_mirrored(who).await? => Ok(true),
                None => self.may_reach_missing(who, name).await,
            },
        }
    }

    /// A name with no distribution: whether `who` may see that it is free.
    async fn may_reach_missing(&self, who: &Identity, name: &RepoName) -> Result<bool, StoreError> {
        if !who.is_authenticated() {
            return Ok(false);
        }
        Ok(match self.namespace_id(name.as_str()).await? {
            Some(ns) => who.has(
                "container.namespace_view_containerdistribution",
                Some(ObjectRef::new(ObjectKind::Namespace, ns)),
            ),
            None => Self::may_create_namespace(who, namespace_of(name.as_str())),
        })
    }

    /// Whether `who` may push to (or delete from) `name`, making its distribution (and
    /// namespace) when they are missing.
    pub async fn may_push(&self, who: &Identity, name: &RepoName) -> Result<bool, StoreError> {
        if who.admin {
            return Ok(true);
        }
        if !who.is_authenticated() {
            return Ok(false);
        }
        let ns = self.namespace_id(name.as_str()).await?;
        Ok(match self.store.distribution_by_base_path(name).await? {
            Some(d) => on_namespace_or_object(who, "push_containerdistribution", d.id, ns),
            None => match ns {
                Some(ns) => who.has(
                    "container.namespace_add_containerdistribution",
                    Some(ObjectRef::new(ObjectKind::Namespace, ns)),
                ),
                None => Self::may_create_namespace(who, namespace_of(name.as_str())),
            },
        })
    }

    /// What `who` sees in the catalog (a read for each namespace it was given pulls in).
    pub async fn catalog_view(&self, who: &Identity) -> Result<CatalogView, StoreError> {
        let mut namespaces = HashSet::new();
        for o in who.objects_with("container.namespace_pull_containerdistribution") {
            if o.kind == ObjectKind::Namespace {
                if let Some(ns) = self.store.namespace(o.id).await? {
                    namespaces.insert(ns.name);
                }
            }
        }
        Ok(CatalogView {
            all: who.has_global("container.pull_containerdistribution")
                || who.has_global("container.namespace_pull_containerdistribution"),
            namespaces,
            distributions: who
                .objects_with("container.pull_containerdistribution")
                .filter(|o| o.kind == ObjectKind::Distribution)
                .map(|o| o.id)
                .collect(),
        })
    }

    /// The part of `requested` that `who` may have.
    pub async fn grant(&self, who: &Identity, requested: Vec<Access>) -> Result<Vec<Access>, StoreError> {
        let mut out = Vec::new();
        for mut a in requested {
            let mut allowed = Vec::new();
            match a.kind.as_str() {
                "registry" if a.name == "catalog" && a.actions.iter().any(|x| x == "*") => {
                    allowed.push("*".to_owned());
                }
                "repository" => {
                    let Ok(name) = RepoName::parse(&a.name) else { continue };
                    let mut pull = None;
                    let mut push = None;
                    for action in &a.actions {
                        let ok = match action.as_str() {
                            "pull" => *pull.get_or_insert(self.may_pull(who, &name).await?),
                            "push" | "delete" => *push.get_or_insert(self.may_push(who, &name).await?),
                            "*" => who.admin,
                            _ => false,
                        };
                        if ok && !allowed.contains(action) {
                            allowed.push(action.clone());
                        }
                    }
                }
                _ => {}
            }
            a.actions = allowed;
            if !a.actions.is_empty() {
                out.push(a);
            }
        }
        Ok(out)
    }
}

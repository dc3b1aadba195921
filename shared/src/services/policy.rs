//! Who may do what through the management API, from roles as pulp_container's access
//! policies decide it, and what each caller's lists show.
//!
//! A caller that may not see an object gets `NotFound` for it, as for one that does not
//! exist (nothing private leaks through an error); one that sees it but may not do what it
//! asked gets `Forbidden`. A superuser may do everything.
//!
//! - **Namespaces**: seen with `view_containernamespace`; deleted with
//!   `delete_containernamespace`; made by a namespace creator or under the caller's own name.
//! - **Distributions**: public ones are seen by everyone; private ones with
//!   `view_containerdistribution` on them or `namespace_view_containerdistribution` on their
//!   namespace. Changing and deleting take `change_`/`delete_containerdistribution` the same
//!   way. Making one takes `namespace_add_containerdistribution` on its namespace (or what
//!   making the namespace takes), and seeing the repository it is to serve.
//! - **Repositories** (synced): seen with `view_containerrepository`, or through a distribution
//!   serving them that the caller sees; changed, deleted, synced, modified with the
//!   repository permissions (or `namespace_…_containerrepository` on a serving distribution's
//!   namespace).
//! - **Push repositories**: seen through a distribution serving them; changed and modified with
//!   `namespace_…_containerpushrepository` on the namespace, or `change_`/`push_containerdistribution`
//!   on the distribution.
//! - **Remotes**: `view_`/`change_`/`delete_containerremote`; made by a remote creator.
//! - **Tasks**: seen, canceled and deleted by whoever started them.
//!
//! What a caller makes, it owns (the creator gets the owner role on it).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use std::collections::HashMap;

use uuid::Uuid;

use super::access::{namespace_of, on_namespace_or_object, AccessRules};
use super::accounts::Identity;
use super::invalid::ManageError;
use super::manage::Manage;
use crate::ports::StoreError;
use crate::store::{Distribution, ObjectKind, ObjectRef, Remote, Repository, RepositoryKind, Store, Task};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// What a caller asks to do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    View,
    Change,
    Delete,
    /// Sync a repository (from the remote given).
    Sync(Uuid),
    /// Add, remove, tag, untag, copy content; delete or repair versions.
    Modify,
    DeleteVersions,
    Repair,
}

/// An object of the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Namespace(Uuid),
    Distribution(Uuid),
    Repository(Uuid, RepositoryKind),
    Remote(Uuid),
    Task(Uuid),
}

fn obj(kind: ObjectKind, id: Uuid) -> Option<ObjectRef> {
    Some(ObjectRef::new(kind, id))
}

/// What one caller sees of the lists: everything (`None` inside), or what roles show it.
pub struct Scope {
    all: bool,
    who: Identity,
    /// Namespaces by name → id (every namespace the caller's roles name, and those of
    /// distributions looked at).
    namespaces: HashMap<String, Uuid>,
    /// Repositories served by a distribution the caller sees, with the distribution's id and
    /// namespace.
    served: HashMap<Uuid, Vec<(Uuid, Option<Uuid>, bool)>>,
}

impl Scope {
    fn ns(&self, base_path: &str) -> Option<Uuid> {
        self.namespaces.get(namespace_of(base_path)).copied()
    }

    pub fn sees_namespace(&self, id: Uuid) -> bool {
        self.all
            || self
                .who
                .has("container.view_containernamespace", obj(ObjectKind::Namespace, id))
    }

    pub fn sees_distribution(&self, d: &Distribution) -> bool {
        self.all
            || !d.private
            || on_namespace_or_object(
                &self.who,
                "view_containerdistribution",
                d.id,
                self.ns(d.base_path.as_str()),
            )
    }

    pub fn sees_repository(&self, r: &Repository) -> bool {
        if self.all {
            return true;
        }
        if r.kind == RepositoryKind::Mirror
            && self
                .who
                .has("container.view_containerrepository", obj(ObjectKind::Repository, r.id))
        {
            return true;
        }
        let ns_perm = match r.kind {
            RepositoryKind::Mirror => "container.namespace_view_containerrepository",
            RepositoryKind::Push => "container.namespace_view_containerpushrepository",
        };
        self.served.get(&r.id).is_some_and(|ds| {
            ds.iter().any(|(d, ns, private)| {
                !private
                    || self.who.has(
                        "container.view_containerdistribution",
                        obj(ObjectKind::Distribution, *d),
                    )
                    || self.who.has(
                        "container.namespace_view_containerdistribution",
                        ns.and_then(|n| obj(ObjectKind::Namespace, n)),
                    )
                    || self.who.has(ns_perm, ns.and_then(|n| obj(ObjectKind::Namespace, n)))
            })
        })
    }

    pub fn sees_remote(&self, r: &Remote) -> bool {
        self.all
            || self
                .who
                .has("container.view_containerremote", obj(ObjectKind::Remote, r.id))
    }

    pub fn sees_task(&self, t: &Task) -> bool {
        self.all || (self.who.user_id != 0 && t.owner == Some(self.who.user_id))
    }

    /// Whether the caller sees everything (lists need no filtering).
    pub fn all(&self) -> bool {
        self.all
    }
}

/// The distributions serving repository `id`, with their namespaces' ids.
async fn serving(store: &Store, id: Uuid) -> Result<Vec<(Distribution, Option<Uuid>)>, StoreError> {
    let mut out = Vec::new();
    for d in store.distributions(None, usize::MAX).await? {
        if d.repository == Some(id) {
            let ns = store
                .namespace_by_name(namespace_of(d.base_path.as_str()))
                .await?
                .map(|n| n.id);
            out.push((d, ns));
        }
    }
    Ok(out)
}

impl Manage {
    /// What `who` sees of the lists. For a caller that does not see everything, one scan of
    /// the distributions and the namespaces.
    pub async fn scope(&self, who: &Identity) -> Result<Scope> {
        let mut s = Scope {
            all: who.admin,
            who: who.clone(),
            namespaces: HashMap::new(),
            served: HashMap::new(),
        };
        if s.all {
            return Ok(s);
        }
        for ns in self.store().namespaces().await? {
            s.namespaces.insert(ns.name, ns.id);
        }
        for d in self.store().distributions(None, usize::MAX).await? {
            if let Some(r) = d.repository {
                let ns = s.ns(d.base_path.as_str());
                s.served.entry(r).or_default().push((d.id, ns, d.private));
            }
        }
        Ok(s)
    }

    /// Checks that `who` may `act` on `target`: `NotFound` when it may not see it (or it does
    /// not exist), `Forbidden` when it sees it but may not do this.
    pub async fn authorize(&self, who: &Identity, target: Target, act: Act) -> Result<()> {
        if who.admin {
            return Ok(());
        }
        if !who.is_authenticated() {
            return Err(ManageError::Forbidden);
        }
        let store = self.store();
        let (sees, may) = match target {
            Target::Namespace(id) => {
                let o = obj(ObjectKind::Namespace, id);
                let sees = who.has("container.view_containernamespace", o);
                let may = match act {
                    Act::View => true,
                    Act::Delete => who.has("container.delete_containernamespace", o),
                    _ => false,
                };
                (sees, may)
            }
            Target::Distribution(id) => {
                let d = store.distribution(id).await?.ok_or(ManageError::NotFound)?;
                let ns = store
                    .namespace_by_name(namespace_of(d.base_path.as_str()))
                    .await?
                    .map(|n| n.id);
                let sees = !d.private || on_namespace_or_object(who, "view_containerdistribution", id, ns);
                let may = match act {
                    Act::View => true,
                    Act::Change => on_namespace_or_object(who, "change_containerdistribution", id, ns),
                    Act::Delete => on_namespace_or_object(who, "delete_containerdistribution", id, ns),
                    _ => false,
                };
                (sees, may)
            }
            Target::Repository(id, kind) => {
                let r = store
                    .repository(id)
                    .await?
                    .filter(|r| r.kind == kind)
                    .ok_or(ManageError::NotFound)?;
                let dists = serving(store, id).await?;
                let scope = Scope {
                    all: false,
                    who: who.clone(),
                    namespaces: dists
                        .iter()
                        .filter_map(|(d, ns)| ns.map(|n| (namespace_of(d.base_path.as_str()).to_owned(), n)))
                        .collect(),
                    served: HashMap::from([(id, dists.iter().map(|(d, ns)| (d.id, *ns, d.private)).collect())]),
                };
                let sees = scope.sees_repository(&r);
                let may = repository_act(who, &r, &dists, act);
                if let (Act::Sync(remote), true) = (act, may) {
                    let Some(rem) = store.remote(remote).await? else {
                        return Err(ManageError::invalid("remote", super::invalid::Invalid::NoObject));
                    };
                    if !who.has("container.view_containerremote", obj(ObjectKind::Remote, rem.id)) {
                        return Err(ManageError::invalid("remote", super::invalid::Invalid::NoObject));
                    }
                }
                (sees, may)
            }
            Target::Remote(id) => {
                let o = obj(ObjectKind::Remote, id);
                let sees = who.has("container.view_containerremote", o);
                let may = match act {
                    Act::View => true,
                    Act::Change => who.has("container.change_containerremote", o),
                    Act::Delete => who.has("container.delete_containerremote", o),
                    _ => false,
                };
                (sees, may)
            }
            Target::Task(id) => {
                let t = store.task(id).await?.ok_or(ManageError::NotFound)?;
                let own = who.user_id != 0 && t.owner == Some(who.user_id);
                (own, own)
            }
        };
        match (sees, may) {
            (false, _) => Err(ManageError::NotFound),
            (true, false) => Err(ManageError::Forbidden),
            (true, true) => Ok(()),
        }
    }

    /// Checks that `who` may make a distribution at `base_path` serving `repository`.
    pub(crate) async fn may_create_distribution(
        &self,
        who: &Identity,
        base_path: &str,
        repository: Option<(Uuid, RepositoryKind)>,
    ) -> Result<()> {
        if who.admin {
            return Ok(());
        }
        let ns = namespace_of(base_path);
        let ok = match self.store().namespace_by_name(ns).await? {
            Some(n) => {
                who.has_global("container.add_containerdistribution")
                    || who.has(
                        "container.namespace_add_containerdistribution",
                        obj(ObjectKind::Namespace, n.id),
                    )
            }
            None => AccessRules::may_create_namespace(who, ns),
        };
        if !ok {
            return Err(ManageError::Forbidden);
        }
        self.may_serve(who, repository).await
    }

    /// Checks that `who` sees the repository a distribution is to serve.
    pub(crate) async fn may_serve(&self, who: &Identity, repository: Option<(Uuid, RepositoryKind)>) -> Result<()> {
        match repository {
            Some((id, kind)) if !who.admin => {
                match self.authorize(who, Target::Repository(id, kind), Act::View).await {
                    Err(ManageError::NotFound) => {
                        Err(ManageError::invalid("repository", super::invalid::Invalid::NoObject))
                    }
                    other => other,
                }
            }
            _ => Ok(()),
        }
    }

    /// Checks that `who` may make an object that needs `perm` everywhere.
    pub(crate) fn may_create(who: &Identity, perm: &str) -> Result<()> {
        if who.has_global(perm) {
            Ok(())
        } else {
            Err(ManageError::Forbidden)
        }
    }

    /// Makes `who` the owner (`role`) of what it just made.
    pub(crate) async fn give_owner(&self, who: &Identity, role: &str, o: ObjectRef) -> Result<()> {
        if let Some(a) = &self.accounts {
            a.give_owner(who, role, o).await?;
        }
        Ok(())
    }

    /// Forgets the roles given on an object that is gone.
    pub(crate) async fn drop_roles(&self, o: ObjectRef) -> Result<()> {
        self.store().drop_object_roles(o).await?;
        Ok(())
    }
}

/// Whether `who` may `act` on repository `r`, served by `dists`.
fn repository_act(who: &Identity, r: &Repository, dists: &[(Distribution, Option<Uuid>)], act: Act) -> bool {
    let ro = obj(ObjectKind::Repository, r.id);
    let on_ns = |perm: &str| {
        dists
            .iter()
            .any(|(_, ns)| ns.is_some_and(|n| who.has(perm, obj(ObjectKind::Namespace, n))))
            || who.has_global(perm)
    };
    let on_dist = |perm: &str| {
        dists
            .iter()
            .any(|(d, _)| who.has(perm, obj(ObjectKind::Distribution, d.id)))
    };
    match (r.kind, act) {
        (_, Act::View) => true,
        (RepositoryKind::Mirror, Act::Change) => {
            who.has("container.change_containerrepository", ro)
                || on_ns("container.namespace_change_containerrepository")
                || on_dist("container.change_containerdistribution")
        }
        (RepositoryKind::Mirror, Act::Delete) => who.has("container.delete_containerrepository", ro),
        (RepositoryKind::Mirror, Act::Sync(_) | Act::Repair) => who.has("container.sync_containerrepository", ro),
        (RepositoryKind::Mirror, Act::Modify) => {
            who.has("container.modify_content_containerrepository", ro)
                || on_ns("container.namespace_modify_content_containerrepository")
        }
        (RepositoryKind::Mirror, Act::DeleteVersions) => {
            who.has("container.delete_containerrepository_versions", ro)
                || who.has("container.delete_containerrepository", ro)
        }
        (RepositoryKind::Push, Act::Change) => {
            on_ns("container.namespace_change_containerpushrepository")
                || on_dist("container.change_containerdistribution")
        }
        (RepositoryKind::Push, Act::Delete) => {
            on_ns("container.namespace_delete_containerdistribution")
                || on_dist("container.delete_containerdistribution")
        }
        (RepositoryKind::Push, Act::Modify | Act::DeleteVersions | Act::Repair) => {
            on_ns("container.namespace_modify_content_containerpushrepository")
                || on_dist("container.push_containerdistribution")
        }
        (RepositoryKind::Push, Act::Sync(_)) => false,
    }
}

/// The management operations that check their caller first, then make their owner.
impl Manage {
    /// Makes a repository (needs the repository creator role); the caller owns it.
    pub async fn create_repository_for(&self, who: &Identity, repo: Repository) -> Result<Repository> {
        Self::may_create(who, "container.add_containerrepository")?;
        let repo = self.create_repository(repo).await?;
        self.give_owner(
            who,
            "container.containerrepository_owner",
            ObjectRef::new(ObjectKind::Repository, repo.id),
        )
        .await?;
        Ok(repo)
    }

    /// Makes a remote (needs the remote creator role); the caller owns it.
    pub async fn create_remote_for(&self, who: &Identity, remote: Remote) -> Result<Remote> {
        Self::may_create(who, "container.add_containerremote")?;
        let remote = self.create_remote(remote).await?;
        self.give_owner(
            who,
            "container.containerremote_owner",
            ObjectRef::new(ObjectKind::Remote, remote.id),
        )
        .await?;
        Ok(remote)
    }

    /// Makes a namespace (a namespace creator, or a namespace named as the caller); the caller
    /// owns it.
    pub async fn create_namespace_for(
        &self,
        who: &Identity,
        name: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<crate::store::Namespace> {
        if !who.admin && !AccessRules::may_create_namespace(who, name) {
            return Err(ManageError::Forbidden);
        }
        let ns = self.create_namespace(name, labels).await?;
        self.give_owner(
            who,
            "container.containernamespace_owner",
            ObjectRef::new(ObjectKind::Namespace, ns.id),
        )
        .await?;
        Ok(ns)
    }

    /// The repository a distribution spec serves, with its kind.
    async fn served(&self, spec: &super::DistributionSpec) -> Result<Option<(Uuid, RepositoryKind)>> {
        let id = match spec.serves {
            super::Serves::Nothing => return Ok(None),
            super::Serves::Latest(id) | super::Serves::Version(id, _) => id,
        };
        Ok(self.store().repository(id).await?.map(|r| (r.id, r.kind)))
    }

    /// Makes a distribution (see [`Manage::may_create_distribution`]); the caller owns it, and
    /// the namespace it made with it.
    pub async fn create_distribution_for(&self, who: &Identity, spec: super::DistributionSpec) -> Result<Distribution> {
        let served = self.served(&spec).await?;
        self.may_create_distribution(who, spec.base_path.as_str(), served)
            .await?;
        let ns_name = namespace_of(spec.base_path.as_str()).to_owned();
        let new_namespace = self.store().namespace_by_name(&ns_name).await?.is_none();
        let d = self.create_distribution(spec).await?;
        self.give_creator(who, &ns_name, new_namespace, d.id).await?;
        Ok(d)
    }

    /// The creator of distribution `id` owns it, and namespace `ns_name` when it made it.
    pub(super) async fn give_creator(
        &self,
        who: &Identity,
        ns_name: &str,
        new_namespace: bool,
        id: Uuid,
    ) -> Result<()> {
        if new_namespace {
            if let Some(ns) = self.store().namespace_by_name(ns_name).await? {
                self.give_owner(
                    who,
                    "container.containernamespace_owner",
                    ObjectRef::new(ObjectKind::Namespace, ns.id),
                )
                .await?;
            }
        }
        self.give_owner(
            who,
            "container.containerdistribution_owner",
            ObjectRef::new(ObjectKind::Distribution, id),
        )
        .await
    }

    /// Changes a distribution (checked by the caller of this, through [`Manage::authorize`]);
    /// a repository it is to serve must be one the caller sees, and a new base path one it
    /// may make.
    pub async fn update_distribution_for(
        &self,
        who: &Identity,
        id: Uuid,
        f: impl FnOnce(&Distribution) -> Result<super::DistributionSpec>,
    ) -> Result<Distribution> {
        self.authorize(who, Target::Distribution(id), Act::Change).await?;
        let before = self.container_distribution(id).await?;
        let spec = f(&before)?;
        let served = self.served(&spec).await?;
        if spec.base_path != before.base_path {
            self.may_create_distribution(who, spec.base_path.as_str(), served)
                .await?;
        } else {
            self.may_serve(who, served).await?;
        }
        self.update_distribution(id, move |_| Ok(spec)).await
    }

    /// Starts a sync of `repo` from `remote` (needs sync on the repository and view on the
    /// remote).
    pub async fn sync_for(
        &self,
        who: &Identity,
        repo: &Repository,
        remote: Uuid,
        mirror: bool,
        signed_only: bool,
    ) -> Result<Task> {
        self.authorize(who, Target::Repository(repo.id, repo.kind), Act::Sync(remote))
            .await?;
        self.sync(repo, remote, mirror, signed_only).await
    }

    /// Deletes a distribution the caller may delete (and the roles given on it).
    pub async fn delete_distribution_for(&self, who: &Identity, id: Uuid) -> Result<()> {
        self.authorize(who, Target::Distribution(id), Act::Delete).await?;
        self.container_distribution(id).await?;
        self.delete_distribution(id).await
    }
}

impl Manage {
    /// Copies tags or manifests into `repo` (checked by the caller through
    /// [`Manage::authorize`]) from a source the caller sees: one it does not see is refused as
    /// one that does not exist.
    pub async fn copy_for(
        &self,
        who: &Identity,
        repo: &Repository,
        source: super::CopySource,
        selection: super::CopySelection,
    ) -> Result<Option<crate::store::RepositoryVersion>> {
        let (id, field) = match source {
            super::CopySource::Latest(id) => (id, "source_repository"),
            super::CopySource::Version(id, _) => (id, "source_repository_version"),
        };
        if let Some(src) = self.store().repository(id).await? {
            match self
                .authorize(who, Target::Repository(src.id, src.kind), Act::View)
                .await
            {
                Err(ManageError::NotFound) => {
                    return Err(ManageError::invalid(field, super::invalid::Invalid::NoObject))
                }
                other => other?,
            }
        }
        self.copy(repo, source, selection).await
    }
}

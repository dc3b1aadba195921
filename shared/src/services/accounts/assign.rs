//! Roles given to users and groups: the role list, a user's or group's assignments (global or
//! on one object; superusers manage them), and the roles on one object (its owners manage
//! them: `manage_roles_<model>` on it).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use std::collections::BTreeMap;

use sha2::Digest as _;
use uuid::Uuid;

use super::roles::{self, Role, ROLES};
use super::{Accounts, Identity, Result};
use crate::ports::StoreError;
use crate::services::invalid::{Invalid, ManageError, Who};
use crate::services::namespaces::{Sort, SortKey, SortValue};
use crate::store::{Holder, Listing, ObjectKind, ObjectRef, Page, RoleAssignment};

/// Filters on a user's or group's assignments.
#[derive(Debug, Clone, Default)]
pub struct RoleFilter {
    pub names: crate::services::NameFilter,
    /// `Some(None)`: global assignments only; `Some(Some(o))`: those on `o`.
    pub object: Option<Option<ObjectRef>>,
    /// Newest first when empty.
    pub sort: Sort,
}

fn assignment_value(a: &RoleAssignment, key: SortKey) -> SortValue {
    match key {
        SortKey::Id => SortValue::Id(a.id),
        SortKey::Created | SortKey::Updated | SortKey::LastHeartbeat => SortValue::Time(a.created),
        SortKey::Field("description") => SortValue::Text(
            roles::role(&a.role)
                .and_then(|r| r.description)
                .unwrap_or_default()
                .to_owned(),
        ),
        SortKey::Name | SortKey::Field(_) => SortValue::Text(a.role.clone()),
    }
}

fn role_value(r: &&'static Role, key: SortKey) -> SortValue {
    match key {
        SortKey::Id => SortValue::Id(role_id(r.name)),
        SortKey::Field("description") => SortValue::Text(r.description.unwrap_or_default().to_owned()),
        SortKey::Name => SortValue::Text(r.name.to_owned()),
        // locked, created, updated: the same for every built-in role
        _ => SortValue::Text(String::new()),
    }
}

/// The roles on one object: each role with the users and the groups holding it there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRoles(pub BTreeMap<String, (Vec<String>, Vec<String>)>);

/// A role to give on (or take from) an object, with the users and groups by name.
#[derive(Debug, Clone, Default)]
pub struct NestedRoles {
    pub role: String,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// The error for a user or group of `n` that went while its role was being given.
fn gone(n: &NestedRoles, who: Who) -> ManageError {
    let at = |list: &[String], name: &str| list.iter().position(|x| x == name).unwrap_or(0);
    match who {
        Who::Group(g) => ManageError::FieldItem {
            field: "groups",
            index: at(&n.groups, &g),
            reason: Invalid::NoGroup(g),
        },
        Who::User(u) => ManageError::FieldItem {
            field: "users",
            index: at(&n.users, &u),
            reason: Invalid::NoUser(u),
        },
        Who::ThisUser | Who::ThisGroup => ManageError::NotFound,
    }
}

/// The stable id of a role (its href): derived from its name.
pub fn role_id(name: &str) -> Uuid {
    let h = sha2::Sha256::digest(format!("role:{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// The permission that lets a caller manage the roles on an object of `kind`.
fn manage_perm(kind: ObjectKind) -> Option<&'static str> {
    Some(match kind {
        ObjectKind::Namespace => "container.manage_roles_containernamespace",
        ObjectKind::Distribution => "container.manage_roles_containerdistribution",
        ObjectKind::Repository => "container.manage_roles_containerrepository",
        ObjectKind::Remote => "container.manage_roles_containerremote",
        ObjectKind::Group => "core.manage_roles_group",
        // as in pulp_container, push repositories' roles are given on their distributions
        ObjectKind::PushRepository => return None,
    })
}

impl Accounts {
    /// The roles the filter accepts, by name. Superusers only (as in Pulp).
    pub async fn roles(
        &self,
        who: &Identity,
        names: &crate::services::NameFilter,
        locked: Option<bool>,
        sort: &Sort,
        page: Page,
    ) -> Result<Listing<&'static Role>> {
        Self::superuser_only(who)?;
        let mut all: Vec<&'static Role> = ROLES
            .iter()
            .filter(|r| names.matches(r.name, role_id(r.name)))
            .filter(|_| locked != Some(false))
            .collect();
        sort.order(&mut all, role_value);
        Ok(page.cut(all))
    }

    pub async fn role(&self, who: &Identity, id: Uuid) -> Result<&'static Role> {
        Self::superuser_only(who)?;
        ROLES
            .iter()
            .find(|r| role_id(r.name) == id)
            .ok_or(ManageError::NotFound)
    }

    /// Whether `o` exists.
    pub async fn object_exists(&self, o: ObjectRef) -> Result<bool, StoreError> {
        let s = &self.store;
        Ok(match o.kind {
            ObjectKind::Namespace => s.namespace(o.id).await?.is_some(),
            ObjectKind::Distribution => s.distribution(o.id).await?.is_some(),
            ObjectKind::Repository => s
                .repository(o.id)
                .await?
                .is_some_and(|r| r.kind == crate::store::RepositoryKind::Mirror),
            ObjectKind::PushRepository => s
                .repository(o.id)
                .await?
                .is_some_and(|r| r.kind == crate::store::RepositoryKind::Push),
            ObjectKind::Remote => s.remote(o.id).await?.is_some(),
            ObjectKind::Group => match o.group_id() {
                Some(id) => s.group_by_id(id).await?.is_some(),
                None => false,
            },
        })
    }

    async fn holder_exists(&self, holder: Holder) -> Result<()> {
        let found = match holder {
            Holder::User(id) => self.store.user_by_id(id).await?.is_some(),
            Holder::Group(id) => self.store.group_by_id(id).await?.is_some(),
        };
        if found {
            Ok(())
        } else {
            Err(ManageError::NotFound)
        }
    }

    /// `holder`'s assignments the filter accepts, newest first. Superusers only.
    pub async fn holder_roles(
        &self,
        who: &Identity,
        holder: Holder,
        f: &RoleFilter,
        page: Page,
    ) -> Result<Listing<RoleAssignment>> {
        Self::superuser_only(who)?;
        self.holder_exists(holder).await?;
        let mut all: Vec<RoleAssignment> = self
            .store
            .holder_roles(holder)
            .await?
            .into_iter()
            .filter(|a| f.names.matches(&a.role, role_id(&a.role)))
            .filter(|a| f.object.is_none_or(|o| o == a.object))
            .collect();
        all.sort_by(|a, b| b.created.cmp(&a.created).then(a.role.cmp(&b.role)));
        f.sort.order(&mut all, assignment_value);
        Ok(page.cut(all))
    }

    pub async fn holder_role(&self, who: &Identity, holder: Holder, id: Uuid) -> Result<RoleAssignment> {
        Self::superuser_only(who)?;
        self.store
            .holder_roles(holder)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or(ManageError::NotFound)
    }

    /// Gives `role` to `holder`, everywhere or on `object`. Superusers only.
    pub async fn assign(
        &self,
        who: &Identity,
        holder: Holder,
        role: &str,
        object: Option<ObjectRef>,
    ) -> Result<RoleAssignment> {
        Self::superuser_only(who)?;
        self.holder_exists(holder).await?;
        let r = roles::role(role).ok_or_else(|| ManageError::invalid("role", Invalid::NoRole(role.to_owned())))?;
        if let Some(o) = object {
            if !self.object_exists(o).await? {
                return Err(ManageError::invalid("content_object", Invalid::NoObject));
            }
            if !r.applies_to(o.kind) {
                return Err(ManageError::NonField(vec![Invalid::RoleNotForObject(Some(
                    role.to_owned(),
                ))]));
            }
        }
        let a = RoleAssignment::new(r.name, holder, object);
        match self.store.assign(&a).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                let to = match holder {
                    Holder::User(_) => Who::ThisUser,
                    Holder::Group(_) => Who::ThisGroup,
                };
                return Err(ManageError::NonField(vec![Invalid::RoleAssigned(to)]));
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_all();
        Ok(a)
    }

    /// Takes assignment `id` from `holder`. Superusers only.
    pub async fn unassign(&self, who: &Identity, holder: Holder, id: Uuid) -> Result<()> {
        let a = self.holder_role(who, holder, id).await?;
        self.store.unassign(&a).await?;
        self.forget_all();
        Ok(())
    }

    /// Checks that `who` may manage the roles on `o`, which exists.
    async fn may_manage(&self, who: &Identity, o: ObjectRef) -> Result<()> {
        if !self.object_exists(o).await? {
            return Err(ManageError::NotFound);
        }
        match manage_perm(o.kind) {
            Some(p) if who.has(p, Some(o)) => Ok(()),
            _ => Err(ManageError::Forbidden),
        }
    }

    /// The roles given on `o`, by role (Pulp's `list_roles`).
    pub async fn object_roles(&self, who: &Identity, o: ObjectRef) -> Result<ObjectRoles> {
        self.may_manage(who, o).await?;
        let mut out = ObjectRoles::default();
        for a in self.store.object_roles(o).await? {
            let (users, groups) = out.0.entry(a.role.clone()).or_default();
            match a.holder {
                Holder::User(id) => {
                    if let Some(u) = self.store.user_by_id(id).await? {
                        users.push(u.name);
                    }
                }
                Holder::Group(id) => {
                    if let Some(g) = self.store.group_by_id(id).await? {
                        groups.push(g.name);
                    }
                }
            }
        }
        out.0.retain(|_, (u, g)| !u.is_empty() || !g.is_empty());
        for (u, g) in out.0.values_mut() {
            u.sort();
            g.sort();
        }
        Ok(out)
    }

    /// The holders `n` names, checked: every user and group must exist.
    async fn nested_holders(&self, n: &NestedRoles) -> Result<(&'static Role, Vec<(Holder, Who)>)> {
        let r = roles::role(&n.role).ok_or_else(|| ManageError::invalid("role", Invalid::NoRole(n.role.clone())))?;
        let mut holders = Vec::new();
        for (i, name) in n.users.iter().enumerate() {
            match self.store.user(name).await? {
                Some(u) => {
                    let u = if u.id == 0 {
                        self.store.update_user(&u.name, |_| {}).await?
                    } else {
                        u
                    };
                    holders.push((Holder::User(u.id), Who::User(u.name)));
                }
                None => {
                    return Err(ManageError::FieldItem {
                        field: "users",
                        index: i,
                        reason: Invalid::NoUser(name.clone()),
                    })
                }
            }
        }
        for (i, name) in n.groups.iter().enumerate() {
            match self.store.group(name).await? {
                Some(g) => holders.push((Holder::Group(g.id), Who::Group(g.name))),
                None => {
                    return Err(ManageError::FieldItem {
                        field: "groups",
                        index: i,
                        reason: Invalid::NoGroup(name.clone()),
                    })
                }
            }
        }
        Ok((r, holders))
    }

    /// Gives `n.role` on `o` to each user and group `n` names (Pulp's `add_role`): all or none
    /// is checked first, then each is written.
    pub async fn add_object_role(&self, who: &Identity, o: ObjectRef, n: &NestedRoles) -> Result<()> {
        self.may_manage(who, o).await?;
        let (r, holders) = self.nested_holders(n).await?;
        if !r.applies_to(o.kind) {
            return Err(ManageError::NonField(vec![Invalid::RoleNotForObject(None)]));
        }
        let current = self.store.object_roles(o).await?;
        for (h, name) in &holders {
            if current.iter().any(|a| a.holder == *h && a.role == r.name) {
                return Err(ManageError::NonField(vec![Invalid::RoleAssigned(name.clone())]));
            }
        }
        for (h, name) in holders {
            match self.store.assign(&RoleAssignment::new(r.name, h, Some(o))).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => {
                    return Err(ManageError::NonField(vec![Invalid::RoleAssigned(name)]));
                }
                // deleted since it was looked up: as if it never was
                Err(StoreError::NotFound) => return Err(gone(n, name)),
                Err(e) => return Err(e.into()),
            }
        }
        self.forget_all();
        Ok(())
    }

    /// Takes `n.role` on `o` from each user and group `n` names (Pulp's `remove_role`).
    pub async fn remove_object_role(&self, who: &Identity, o: ObjectRef, n: &NestedRoles) -> Result<()> {
        self.may_manage(who, o).await?;
        let (r, holders) = self.nested_holders(n).await?;
        let current = self.store.object_roles(o).await?;
        let mut remove = Vec::new();
        for (h, name) in holders {
            match current.iter().find(|a| a.holder == h && a.role == r.name) {
                Some(a) => remove.push(a.clone()),
                None => return Err(ManageError::NonField(vec![Invalid::RoleNotAssigned(name)])),
            }
        }
        for a in remove {
            self.store.unassign(&a).await?;
        }
        self.forget_all();
        Ok(())
    }

    /// The permissions `who` holds on `o` through roles on it (Pulp's `my_permissions`).
    pub async fn my_permissions(&self, who: &Identity, o: ObjectRef) -> Result<Vec<&'static str>> {
        if !who.is_authenticated() {
            return Err(ManageError::Forbidden);
        }
        if !self.object_exists(o).await? {
            return Err(ManageError::NotFound);
        }
        Ok(who.object_permissions(o))
    }

    /// Makes sure user `name` holds `role` everywhere (the configuration's read-only users).
    pub async fn ensure_global_role(&self, name: &str, role: &str) -> Result<(), StoreError> {
        let u = self.store.user(name).await?.ok_or(StoreError::NotFound)?;
        let u = if u.id == 0 {
            self.store.update_user(name, |_| {}).await?
        } else {
            u
        };
        match self
            .store
            .assign(&RoleAssignment::new(role, Holder::User(u.id), None))
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        self.forget(name);
        Ok(())
    }

    /// Gives `role` on `o` to the caller, who just made `o` (Pulp's creation hooks). A caller
    /// that is no stored user (anonymous, or a superuser without a number) gets nothing.
    pub async fn give_owner(&self, who: &Identity, role: &str, o: ObjectRef) -> Result<(), StoreError> {
        if who.user_id == 0 {
            return Ok(());
        }
        match self
            .store
            .assign(&RoleAssignment::new(role, Holder::User(who.user_id), Some(o)))
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        if let Some(name) = &who.user {
            self.forget(name);
        }
        Ok(())
    }
}

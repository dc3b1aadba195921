//! Accounts: who a caller is and what it was given (an [`Identity`]), and the management of
//! users, groups, membership and role assignments, as pulpcore has them.
//!
//! A caller's permissions are the union of the permissions of every role given to it or to a
//! group it is in, each either everywhere (a global assignment) or on one object. An identity
//! is built from the store (the user's record, its groups, and the assignments of each: 3 + G
//! reads for a user in G groups) and kept for [`IDENTITY_TTL`] per process, so a change to a
//! user, a group or a role reaches every request within that time; a token carries the access
//! granted when it was issued until it expires, and stops working within [`IDENTITY_TTL`] of its
//! user being deleted or deactivated.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

mod assign;
pub mod roles;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uuid::Uuid;

use super::invalid::{Invalid, ManageError};
use super::namespaces::{Sort, SortKey, SortValue};
use super::users::hash_password;
use crate::ports::StoreError;
use crate::store::{Group, Holder, Listing, ObjectRef, Page, Store, User};

pub use assign::{role_id, NestedRoles, ObjectRoles, RoleFilter};

/// How long an identity built from the store is used before it is built again: the longest a
/// change of roles, groups or users takes to reach a request (a token's own access excepted).
pub const IDENTITY_TTL: Duration = Duration::from_secs(5);

/// Identities kept at most; beyond, the cache starts afresh.
const IDENTITY_CACHE: usize = 10_000;

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// Who is calling, with what its roles give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user's name; `None` for an anonymous caller.
    pub user: Option<String>,
    /// The user's number (0 when anonymous).
    pub user_id: u64,
    /// A superuser may do everything.
    pub admin: bool,
    perms: Perms,
    /// The fingerprint of the user's password hash when the identity was built.
    password: String,
}

/// Permissions given everywhere and on single objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Perms {
    global: BTreeSet<&'static str>,
    on: HashMap<ObjectRef, BTreeSet<&'static str>>,
}

impl Perms {
    fn add(&mut self, role: &str, object: Option<ObjectRef>) {
        let Some(r) = roles::role(role) else { return };
        let set = match object {
            None => &mut self.global,
            Some(o) => self.on.entry(o).or_default(),
        };
        set.extend(r.permissions.iter().copied());
    }
}

impl Identity {
    pub fn anonymous() -> Self {
        Identity::default()
    }

    /// A superuser (the runtimes' own calls and tests).
    pub fn superuser(name: &str) -> Self {
        Identity {
            user: Some(name.to_owned()),
            admin: true,
            ..Identity::default()
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// Whether the caller has `perm` everywhere (a superuser has every permission).
    pub fn has_global(&self, perm: &str) -> bool {
        self.admin || self.perms.global.contains(perm)
    }

    /// Whether the caller has `perm` on `object`: everywhere, or on that object.
    pub fn has(&self, perm: &str, object: Option<ObjectRef>) -> bool {
        self.has_global(perm) || object.is_some_and(|o| self.perms.on.get(&o).is_some_and(|s| s.contains(perm)))
    }

    /// The objects the caller was given `perm` on, one by one (global grants not included).
    pub fn objects_with<'a>(&'a self, perm: &'a str) -> impl Iterator<Item = ObjectRef> + 'a {
        self.perms
            .on
            .iter()
            .filter(move |(_, s)| s.contains(perm))
            .map(|(o, _)| *o)
    }

    /// The permissions the caller holds on `object` through roles on it (Pulp's
    /// `my_permissions`: global roles are not listed).
    pub fn object_permissions(&self, object: ObjectRef) -> Vec<&'static str> {
        self.perms
            .on
            .get(&object)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// A user as the API shows it: the record and its groups.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: User,
    pub groups: Vec<(u64, String)>,
}

/// What a user create or update sets (`None`: unchanged, or the default on create).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub username: Option<String>,
    /// `Some(None)`: no usable password.
    pub password: Option<Option<String>>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_staff: Option<bool>,
    pub is_active: Option<bool>,
}

/// Filters on the user list and its order.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub username: super::NameFilter,
    /// The user's number is one of these (`prn__in`).
    pub ids: Option<Vec<u64>>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    /// Newest first when empty (Pulp's `-date_joined`).
    pub sort: Sort,
}

/// Filters on the group list and its order.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub names: super::NameFilter,
    /// The group's number is one of these (`id__in`, `prn__in`).
    pub ids: Option<Vec<u64>>,
    /// By name when empty.
    pub sort: Sort,
}

fn user_value(u: &User, key: SortKey) -> SortValue {
    let flag = |b: bool| SortValue::Text(if b { "1" } else { "0" }.into());
    match key {
        SortKey::Name | SortKey::Field("username") => SortValue::Text(u.name.clone()),
        SortKey::Id => SortValue::Id(Uuid::from_u64_pair(0, u.id)),
        SortKey::Field("email") => SortValue::Text(u.email.clone()),
        SortKey::Field("first_name") => SortValue::Text(u.first_name.clone()),
        SortKey::Field("last_name") => SortValue::Text(u.last_name.clone()),
        SortKey::Field("is_active") => flag(u.is_active),
        SortKey::Field("is_staff") => flag(u.is_staff),
        SortKey::Field("is_superuser") => flag(u.admin),
        // the password's hash and the last login order nothing
        SortKey::Field(_) => SortValue::Text(String::new()),
        SortKey::Created | SortKey::Updated | SortKey::LastHeartbeat => {
            SortValue::Time(u.date_joined.unwrap_or(DateTime::<Utc>::MIN_UTC))
        }
    }
}

fn group_value(g: &Group, key: SortKey) -> SortValue {
    match key {
        SortKey::Id => SortValue::Id(Uuid::from_u64_pair(0, g.id)),
        _ => SortValue::Text(g.name.clone()),
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// What is wrong with a password, as Django's default validators judge it.
pub fn password_problems(username: &str, password: &str) -> Vec<Invalid> {
    let mut out = Vec::new();
    if password.chars().count() < MIN_PASSWORD {
        out.push(Invalid::PasswordTooShort(MIN_PASSWORD));
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        out.push(Invalid::PasswordLikeUsername);
    }
    if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
        out.push(Invalid::PasswordNumeric);
    }
    out
}

/// A password hash no password matches (a user made without a password cannot log in).
const UNUSABLE: &str = "!";

pub struct Accounts {
    store: Store,
    cache: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl Accounts {
    pub fn new(store: Store) -> Self {
        Accounts {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The identity of user `name`: `None` when there is no such user or it is inactive.
    /// Built from the store at most every [`IDENTITY_TTL`].
    pub async fn identity(&self, name: &str) -> Result<Option<Identity>, StoreError> {
        if let Ok(c) = self.cache.lock() {
            if let Some((id, at)) = c.get(name) {
                if at.elapsed() < IDENTITY_TTL {
                    return Ok(Some(id.clone()));
                }
            }
        }
        let Some(u) = self.store.user(name).await?.filter(|u| u.is_active) else {
            if let Ok(mut c) = self.cache.lock() {
                c.remove(name);
            }
            return Ok(None);
        };
        let mut perms = Perms::default();
        if u.id != 0 && !u.admin {
            for a in self.store.holder_roles(Holder::User(u.id)).await? {
                perms.add(&a.role, a.object);
            }
            for (gid, _) in self.store.user_groups(u.id).await? {
                for a in self.store.holder_roles(Holder::Group(gid)).await? {
                    perms.add(&a.role, a.object);
                }
            }
        }
        let id = Identity {
            user: Some(u.name.clone()),
            user_id: u.id,
            admin: u.admin,
            perms,
            password: super::users::password_fingerprint(&u),
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= IDENTITY_CACHE {
                c.clear();
            }
            c.insert(u.name, (id.clone(), Instant::now()));
        }
        Ok(Some(id))
    }

    /// `who` built again from the store, for a caller refused with what this process last
    /// read of it: a role given moments ago through another process (another Lambda
    /// instance) counts at once. `None` when the user is gone or inactive; anonymous callers
    /// and superusers come back as they are.
    pub async fn refreshed(&self, who: &Identity) -> Result<Option<Identity>, StoreError> {
        match &who.user {
            Some(name) if !who.admin => {
                self.forget(name);
                self.identity(name).await
            }
            _ => Ok(Some(who.clone())),
        }
    }

    /// The identity of a user whose password was just checked (`login`, as the check found
    /// it): `None` when the user is gone, inactive, or has had another password set since
    /// (a password check remembers a success for a while; this is what ends it).
    pub async fn login_identity(&self, login: &User) -> Result<Option<Identity>, StoreError> {
        Ok(self
            .identity(&login.name)
            .await?
            .filter(|id| id.password == super::users::password_fingerprint(login)))
    }

    /// Forgets what this process knows of `name` (it changed here).
    fn forget(&self, name: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(name);
        }
    }

    /// Forgets every identity (roles or groups changed here).
    fn forget_all(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    // ---- users -----------------------------------------------------------------------------

    fn superuser_only(who: &Identity) -> Result<()> {
        if who.admin {
            Ok(())
        } else {
            Err(ManageError::Forbidden)
        }
    }

    async fn view(&self, u: User) -> Result<UserView> {
        let groups = if u.id == 0 {
            Vec::new()
        } else {
            self.store.user_groups(u.id).await?
        };
        Ok(UserView { user: u, groups })
    }

    /// Users the filter accepts, newest first (Pulp's `-date_joined`). Superusers only.
    pub async fn users(&self, who: &Identity, f: &UserFilter, page: Page) -> Result<Listing<UserView>> {
        Self::superuser_only(who)?;
        let mut all: Vec<User> = self
            .store
            .users()
            .await?
            .into_iter()
            .filter(|u| f.username.matches(&u.name, Uuid::nil()))
            .filter(|u| f.ids.as_ref().is_none_or(|ids| ids.contains(&u.id)))
            .filter(|u| f.is_active.is_none_or(|a| u.is_active == a))
            .filter(|u| f.is_staff.is_none_or(|s| u.is_staff == s))
            .collect();
        all.sort_by(|a, b| b.date_joined.cmp(&a.date_joined).then(b.id.cmp(&a.id)));
        f.sort.order(&mut all, user_value);
        let listing = page.cut(all);
        let mut out = Vec::with_capacity(listing.items.len());
        for u in listing.items {
            out.push(self.view(u).await?);
        }
        Ok(Listing {
            items: out,
            count: listing.count,
        })
    }

    pub async fn user(&self, who: &Identity, id: u64) -> Result<UserView> {
        Self::superuser_only(who)?;
        let u = self.store.user_by_id(id).await?.ok_or(ManageError::NotFound)?;
        self.view(u).await
    }

    /// Makes a user (an ordinary one: superusers come from the configuration).
    pub async fn create_user(&self, who: &Identity, c: UserChange) -> Result<UserView> {
        Self::superuser_only(who)?;
        let name = c.username.clone().unwrap_or_default();
        check_username(&name)?;
        let hash = self.password_hash(&name, c.password.clone().flatten())?;
        let mut u = User::new(&name, hash, false);
        apply(&mut u, &c);
        match self.store.create_user(&u).await {
            Ok(u) => self.view(u).await,
            Err(StoreError::Conflict(_)) => Err(ManageError::invalid("username", Invalid::Unique)),
            Err(e) => Err(e.into()),
        }
    }

    fn password_hash(&self, name: &str, password: Option<String>) -> Result<String> {
        match password {
            None => Ok(UNUSABLE.to_owned()),
            Some(p) => {
                let problems = password_problems(name, &p);
                if !problems.is_empty() {
                    return Err(ManageError::NonField(problems));
                }
                Ok(hash_password(&p)?)
            }
        }
    }

    /// Changes user `id`. A rename is refused (Berth names users in tokens and logs).
    pub async fn update_user(&self, who: &Identity, id: u64, c: UserChange) -> Result<UserView> {
        Self::superuser_only(who)?;
        let u = self.store.user_by_id(id).await?.ok_or(ManageError::NotFound)?;
        if let Some(n) = &c.username {
            if *n != u.name {
                return Err(ManageError::field("username", "Users cannot be renamed."));
            }
        }
        let hash = match &c.password {
            Some(p) => Some(self.password_hash(&u.name, p.clone())?),
            None => None,
        };
        let changed = self
            .store
            .update_user(&u.name, |u| {
                apply(u, &c);
                if let Some(h) = &hash {
                    u.password_hash = h.clone();
                }
            })
            .await?;
        self.forget(&u.name);
        self.view(changed).await
    }

    /// Deletes user `id`, its memberships and roles. A superuser cannot delete itself.
    pub async fn delete_user(&self, who: &Identity, id: u64) -> Result<String> {
        Self::superuser_only(who)?;
        let u = self.store.user_by_id(id).await?.ok_or(ManageError::NotFound)?;
        if who.user.as_deref() == Some(u.name.as_str()) {
            return Err(ManageError::Refused(Invalid::Message(
                "You cannot delete your own account.".into(),
            )));
        }
        self.store.delete_user(&u.name).await?;
        self.forget(&u.name);
        Ok(u.name)
    }

    // ---- groups ----------------------------------------------------------------------------

    /// Groups the caller may view (`core.view_group`), by name.
    pub async fn groups(&self, who: &Identity, f: &GroupFilter, page: Page) -> Result<Listing<Group>> {
        if !who.is_authenticated() {
            return Err(ManageError::Forbidden);
        }
        let mut all: Vec<Group> = self
            .store
            .groups()
            .await?
            .into_iter()
            .filter(|g| who.has("core.view_group", Some(ObjectRef::group(g.id))))
            .filter(|g| f.names.matches(&g.name, ObjectRef::group(g.id).id))
            .filter(|g| f.ids.as_ref().is_none_or(|ids| ids.contains(&g.id)))
            .collect();
        f.sort.order(&mut all, group_value);
        Ok(page.cut(all))
    }

    /// Group `id` when the caller may view it (`NotFound` otherwise, as for a missing one).
    pub async fn group(&self, who: &Identity, id: u64) -> Result<Group> {
        let g = self.store.group_by_id(id).await?.ok_or(ManageError::NotFound)?;
        if !who.has("core.view_group", Some(ObjectRef::group(id))) {
            return Err(ManageError::NotFound);
        }
        Ok(g)
    }

    async fn group_with(&self, who: &Identity, id: u64, perm: &str) -> Result<Group> {
        let g = self.group(who, id).await?;
        if !who.has(perm, Some(ObjectRef::group(id))) {
            return Err(ManageError::Forbidden);
        }
        Ok(g)
    }

    /// Makes a group (needs `core.add_group`); its creator becomes its owner.
    pub async fn create_group(&self, who: &Identity, name: &str) -> Result<Group> {
        if !who.has_global("core.add_group") {
            return Err(ManageError::Forbidden);
        }
        if name.is_empty() || name.chars().count() > 150 {
            return Err(ManageError::field(
                "name",
                "Ensure this field has between 1 and 150 characters.",
            ));
        }
        let g = match self.store.create_group(name).await {
            Ok(g) => g,
            Err(StoreError::Conflict(_)) => return Err(ManageError::invalid("name", Invalid::Unique)),
            Err(e) => return Err(e.into()),
        };
        self.give_owner(who, "core.group_owner", ObjectRef::group(g.id)).await?;
        Ok(g)
    }

    pub async fn rename_group(&self, who: &Identity, id: u64, name: &str) -> Result<Group> {
        self.group_with(who, id, "core.change_group").await?;
        match self.store.rename_group(id, name).await {
            Ok(g) => Ok(g),
            Err(StoreError::Conflict(_)) => Err(ManageError::invalid("name", Invalid::Unique)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_group(&self, who: &Identity, id: u64) -> Result<()> {
        self.group_with(who, id, "core.delete_group").await?;
        self.store.delete_group(id).await?;
        self.store.drop_object_roles(ObjectRef::group(id)).await?;
        self.forget_all();
        Ok(())
    }

    /// The users in group `id`, by number.
    pub async fn group_users(&self, who: &Identity, id: u64, page: Page) -> Result<Listing<(u64, String)>> {
        self.group(who, id).await?;
        Ok(page.cut(self.store.group_users(id).await?))
    }

    /// Puts user `username` into group `id` (needs `core.change_group` on it). Idempotent.
    pub async fn add_group_user(&self, who: &Identity, id: u64, username: &str) -> Result<(u64, String)> {
        let g = self.group_with(who, id, "core.change_group").await?;
        let u = self
            .store
            .user(username)
            .await?
            .ok_or_else(|| ManageError::Refused(Invalid::NoUser(username.to_owned())))?;
        let u = if u.id == 0 {
            self.store.update_user(&u.name, |_| {}).await?
        } else {
            u
        };
        self.store.add_group_user(&g, &u).await.map_err(|e| match e {
            StoreError::NotFound => ManageError::Refused(Invalid::NoUser(username.to_owned())),
            StoreError::Conflict(_) => ManageError::Busy,
            e => e.into(),
        })?;
        self.forget(&u.name);
        Ok((u.id, u.name))
    }

    /// Takes user `user_id` out of group `id` (needs `core.change_group` on it).
    pub async fn remove_group_user(&self, who: &Identity, id: u64, user_id: u64) -> Result<()> {
        self.group_with(who, id, "core.change_group").await?;
        if self.store.user_by_id(user_id).await?.is_none() {
            return Err(ManageError::NotFound);
        }
        self.store.remove_group_user(id, user_id).await?;
        self.forget_all();
        Ok(())
    }
}

fn check_username(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(ManageError::field("username", "This field may not be blank."));
    }
    let ok = name.chars().count() <= 150
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_'));
    if !ok {
        return Err(ManageError::field(
            "username",
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        ));
    }
    Ok(())
}

fn apply(u: &mut User, c: &UserChange) {
    if let Some(v) = &c.first_name {
        u.first_name = v.clone();
    }
    if let Some(v) = &c.last_name {
        u.last_name = v.clone();
    }
    if let Some(v) = &c.email {
        u.email = v.clone();
    }
    if let Some(v) = c.is_staff {
        u.is_staff = v;
    }
    if let Some(v) = c.is_active {
        u.is_active = v;
    }
}

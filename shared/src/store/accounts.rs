//! Accounts: users, groups, who is in which group, and role assignments (Pulp's RBAC).
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `users` | `<name>` | [`User`] |
//! | `user-ids` | `<id>` | user name |
//! | `groups` | `<name>` | [`Group`] |
//! | `group-ids` | `<id>` | group name |
//! | `ids` | `user` / `group` | the last id given (users and groups have numbers, as in Pulp) |
//! | `group-users#<group id>` | `<user id>` | user name |
//! | `user-groups#<user id>` | `<group id>` | group name |
//! | `roles#<holder>` | `<role>#<object or *>` | [`RoleAssignment`] (`holder`: `u<user id>` or `g<group id>`) |
//! | `object-roles#<object>` | `<holder>#<role>` | [`RoleAssignment`] |
//!
//! Memberships and role assignments hang off ids, never names: a user (or group) deleted and
//! made again under the same name gets a new id, so nothing granted to the old one reaches the
//! new one, whatever a delete left behind. Each membership and assignment is written with its
//! mirror row in one transaction that also holds the user and group rows at the revisions read,
//! so none is made for a user or group being deleted.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, encode, num, Store, User};
use crate::ports::{Cond, Query, Row, StoreError, Write};

const USERS: &str = "users";
const USER_IDS: &str = "user-ids";
const GROUPS: &str = "groups";
const GROUP_IDS: &str = "group-ids";
const IDS: &str = "ids";

/// How many times a create tries again when another create took the id it chose.
const ID_ATTEMPTS: u32 = 50;

/// A group of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u64,
    pub name: String,
}

/// What a role can be given on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Namespace,
    Distribution,
    Repository,
    PushRepository,
    Remote,
    /// A group of users (its id is [`ObjectRef::group`]'s).
    Group,
}

impl ObjectKind {
    fn tag(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "namespace",
            ObjectKind::Distribution => "distribution",
            ObjectKind::Repository => "repository",
            ObjectKind::PushRepository => "push-repository",
            ObjectKind::Remote => "remote",
            ObjectKind::Group => "group",
        }
    }
}

/// One object a role is given on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub id: Uuid,
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, id: Uuid) -> Self {
        ObjectRef { kind, id }
    }

    /// Group `id` as an object (groups have numbers, objects ids: the number is the id's low
    /// half).
    pub fn group(id: u64) -> Self {
        ObjectRef::new(ObjectKind::Group, Uuid::from_u64_pair(0, id))
    }

    /// The number of the group this is, when it is one.
    pub fn group_id(&self) -> Option<u64> {
        (self.kind == ObjectKind::Group).then(|| self.id.as_u64_pair().1)
    }

    fn key(&self) -> String {
        format!("{}:{}", self.kind.tag(), self.id)
    }
}

/// Who holds a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    User(u64),
    Group(u64),
}

impl Holder {
    fn key(&self) -> String {
        match self {
            Holder::User(id) => format!("u{}", num(*id)),
            Holder::Group(id) => format!("g{}", num(*id)),
        }
    }

    fn partition(&self) -> String {
        format!("roles#{}", self.key())
    }
}

/// A role given to a user or a group, on everything (`object: None`) or on one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub id: Uuid,
    pub role: String,
    pub holder: Holder,
    pub object: Option<ObjectRef>,
    pub created: DateTime<Utc>,
}

impl RoleAssignment {
    pub fn new(role: &str, holder: Holder, object: Option<ObjectRef>) -> Self {
        RoleAssignment {
            id: Uuid::new_v4(),
            role: role.to_owned(),
            holder,
            object,
            created: Utc::now(),
        }
    }

    fn holder_sk(&self) -> String {
        format!(
            "{}#{}",
            self.role,
            self.object.as_ref().map_or_else(|| "*".to_owned(), ObjectRef::key)
        )
    }

    fn object_rows(&self) -> Option<(String, String)> {
        let o = self.object.as_ref()?;
        Some((
            format!("object-roles#{}", o.key()),
            format!("{}#{}", self.holder.key(), self.role),
        ))
    }
}

/// A user's row at the revision read, rewritten unchanged in a transaction so that the
/// transaction fails when the user changed (was deleted) meanwhile.
fn hold(pk: &str, row: &Row) -> Write {
    Write::put(pk, row.sk.clone(), row.value.clone(), Cond::Rev(row.rev))
}

impl Store {
    // ---- users -----------------------------------------------------------------------------

    pub async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(match self.t.get(USERS, name).await? {
            Some(row) => Some(decode(&row)?),
            None => None,
        })
    }

    /// The user numbered `id`. Two reads.
    pub async fn user_by_id(&self, id: u64) -> Result<Option<User>, StoreError> {
        let Some(row) = self.t.get(USER_IDS, &num(id)).await? else {
            return Ok(None);
        };
        let name: String = decode(&row)?;
        Ok(self.user(&name).await?.filter(|u| u.id == id))
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.all(USERS).await
    }

    /// The next free number of `kind` (`user`, `group`) and the write that takes it.
    async fn next_id(&self, kind: &str) -> Result<(u64, Write), StoreError> {
        let (n, cond) = match self.t.get(IDS, kind).await? {
            Some(row) => (decode::<u64>(&row)? + 1, Cond::Rev(row.rev)),
            None => (1, Cond::Absent),
        };
        Ok((n, Write::put(IDS, kind, encode(&n)?, cond)))
    }

    /// Creates a user with a new number (the one in `u` is ignored); `Conflict` when the name
    /// is taken. Returns the user as stored.
    pub async fn create_user(&self, u: &User) -> Result<User, StoreError> {
        for attempt in 0..ID_ATTEMPTS {
            let (id, take) = self.next_id("user").await?;
            let mut u = u.clone();
            u.id = id;
            let writes = vec![
                Write::put(USERS, &u.name, encode(&u)?, Cond::Absent),
                Write::put(USER_IDS, num(id), encode(&u.name)?, Cond::Absent),
                take,
            ];
            match self.t.transact(writes).await {
                Ok(()) => return Ok(u),
                Err(StoreError::Conflict(c)) => {
                    if self.t.get(USERS, &u.name).await?.is_some() {
                        return Err(StoreError::Conflict(c));
                    }
                    super::namespaces::hold_backoff(attempt.min(6)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict("user numbers kept changing".into()))
    }

    /// Changes user `name` with `f` (read, change, write under the revision read; tried again
    /// when someone else wrote). A user stored before users had numbers gets one. `NotFound`
    /// when there is no such user.
    pub async fn update_user(&self, name: &str, mut f: impl FnMut(&mut User)) -> Result<User, StoreError> {
        for attempt in 0..ID_ATTEMPTS {
            let row = self.t.get(USERS, name).await?.ok_or(StoreError::NotFound)?;
            let mut u: User = decode(&row)?;
            f(&mut u);
            u.name = name.to_owned();
            let mut writes = Vec::new();
            if u.id == 0 {
                let (id, take) = self.next_id("user").await?;
                u.id = id;
                writes.push(Write::put(USER_IDS, num(id), encode(&u.name)?, Cond::Absent));
                writes.push(take);
            }
            writes.push(Write::put(USERS, name, encode(&u)?, Cond::Rev(row.rev)));
            match self.t.transact(writes).await {
                Ok(()) => return Ok(u),
                Err(StoreError::Conflict(_)) => super::namespaces::hold_backoff(attempt.min(6)).await,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!("user {name} kept changing")))
    }

    /// Gives a number to every user stored before users had numbers (at start: one scan of the
    /// users, a write for each such user).
    pub async fn number_users(&self) -> Result<(), StoreError> {
        for u in self.users().await? {
            if u.id == 0 {
                self.update_user(&u.name, |_| {}).await?;
            }
        }
        Ok(())
    }

    /// Creates user `u.name`, or changes the stored one with `f`.
    pub async fn upsert_user(&self, u: &User, f: impl Fn(&mut User)) -> Result<User, StoreError> {
        loop {
            match self.update_user(&u.name, &f).await {
                Err(StoreError::NotFound) => {}
                other => return other,
            }
            match self.create_user(u).await {
                Err(StoreError::Conflict(_)) => {}
                other => return other,
            }
        }
    }

    /// Deletes user `name`, then the groups memberships and roles it had. `NotFound` when
    /// there is none.
    pub async fn delete_user(&self, name: &str) -> Result<User, StoreError> {
        let mut attempt = 0;
        let u = loop {
            let row = self.t.get(USERS, name).await?.ok_or(StoreError::NotFound)?;
            let u: User = decode(&row)?;
            let mut writes = vec![Write::delete(USERS, name, Cond::Rev(row.rev))];
            if u.id != 0 {
                writes.push(Write::delete(USER_IDS, num(u.id), Cond::Any));
            }
            // a membership or assignment written meanwhile held the row: look again
            match self.t.transact(writes).await {
                Err(StoreError::Conflict(_)) if attempt < ID_ATTEMPTS => {
                    super::namespaces::hold_backoff(attempt.min(6)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => break u,
            }
        };
        if u.id != 0 {
            for (gid, _) in self.user_groups(u.id).await? {
                self.t
                    .transact(vec![
                        Write::delete(format!("group-users#{}", num(gid)), num(u.id), Cond::Any),
                        Write::delete(format!("user-groups#{}", num(u.id)), num(gid), Cond::Any),
                    ])
                    .await?;
            }
            self.drop_roles(Holder::User(u.id)).await?;
        }
        Ok(u)
    }

    async fn drop_roles(&self, holder: Holder) -> Result<(), StoreError> {
        for a in self.holder_roles(holder).await? {
            self.unassign(&a).await?;
        }
        Ok(())
    }

    // ---- groups ----------------------------------------------------------------------------

    pub async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        Ok(match self.t.get(GROUPS, name).await? {
            Some(row) => Some(decode(&row)?),
            None => None,
        })
    }

    pub async fn group_by_id(&self, id: u64) -> Result<Option<Group>, StoreError> {
        let Some(row) = self.t.get(GROUP_IDS, &num(id)).await? else {
            return Ok(None);
        };
        let name: String = decode(&row)?;
        Ok(self.group(&name).await?.filter(|g| g.id == id))
    }

    pub async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        self.all(GROUPS).await
    }

    /// Creates group `name` with a new number; `Conflict` when the name is taken.
    pub async fn create_group(&self, name: &str) -> Result<Group, StoreError> {
        for attempt in 0..ID_ATTEMPTS {
            let (id, take) = self.next_id("group").await?;
            let g = Group {
                id,
                name: name.to_owned(),
            };
            let writes = vec![
                Write::put(GROUPS, name, encode(&g)?, Cond::Absent),
                Write::put(GROUP_IDS, num(id), encode(&g.name)?, Cond::Absent),
                take,
            ];
            match self.t.transact(writes).await {
                Ok(()) => return Ok(g),
                Err(StoreError::Conflict(c)) => {
                    if self.t.get(GROUPS, name).await?.is_some() {
                        return Err(StoreError::Conflict(c));
                    }
                    super::namespaces::hold_backoff(attempt.min(6)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict("group numbers kept changing".into()))
    }

    /// Renames group `id`; `Conflict` when the new name is taken, `NotFound` when it is gone.
    pub async fn rename_group(&self, id: u64, name: &str) -> Result<Group, StoreError> {
        let renamed = Group {
            id,
            name: name.to_owned(),
        };
        for attempt in 0..ID_ATTEMPTS {
            let g = self.group_by_id(id).await?.ok_or(StoreError::NotFound)?;
            if g.name == name {
                return Ok(g);
            }
            let row = self.t.get(GROUPS, &g.name).await?.ok_or(StoreError::NotFound)?;
            let writes = vec![
                Write::delete(GROUPS, &g.name, Cond::Rev(row.rev)),
                Write::put(GROUPS, name, encode(&renamed)?, Cond::Absent),
                Write::put(GROUP_IDS, num(id), encode(&renamed.name)?, Cond::Any),
            ];
            match self.t.transact(writes).await {
                Ok(()) => return Ok(renamed),
                Err(StoreError::Conflict(c)) => {
                    if self.t.get(GROUPS, name).await?.is_some() {
                        return Err(StoreError::Conflict(c));
                    }
                    super::namespaces::hold_backoff(attempt.min(6)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!("group {id} kept changing")))
    }

    /// Deletes group `id`, then its memberships and roles. `NotFound` when there is none.
    pub async fn delete_group(&self, id: u64) -> Result<Group, StoreError> {
        let mut attempt = 0;
        let g = loop {
            let g = self.group_by_id(id).await?.ok_or(StoreError::NotFound)?;
            let row = self.t.get(GROUPS, &g.name).await?.ok_or(StoreError::NotFound)?;
            let writes = vec![
                Write::delete(GROUPS, &g.name, Cond::Rev(row.rev)),
                Write::delete(GROUP_IDS, num(id), Cond::Any),
            ];
            match self.t.transact(writes).await {
                Err(StoreError::Conflict(_)) if attempt < ID_ATTEMPTS => {
                    super::namespaces::hold_backoff(attempt.min(6)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => break g,
            }
        };
        for (uid, _) in self.group_users(id).await? {
            self.t
                .transact(vec![
                    Write::delete(format!("group-users#{}", num(id)), num(uid), Cond::Any),
                    Write::delete(format!("user-groups#{}", num(uid)), num(id), Cond::Any),
                ])
                .await?;
        }
        self.drop_roles(Holder::Group(id)).await?;
        Ok(g)
    }

    /// Puts user `user` into group `group`; `NotFound` when either is missing (or goes while
    /// this runs). Idempotent.
    pub async fn add_group_user(&self, group: &Group, user: &User) -> Result<(), StoreError> {
        for attempt in 0..ID_ATTEMPTS {
            match self.try_add_group_user(group, user).await {
                // the user or the group changed meanwhile (or went: the next round finds out)
                Err(StoreError::Conflict(_)) => super::namespaces::hold_backoff(attempt.min(6)).await,
                other => return other,
            }
        }
        Err(StoreError::Conflict("the user or the group kept changing".into()))
    }

    async fn try_add_group_user(&self, group: &Group, user: &User) -> Result<(), StoreError> {
        let grow = self.t.get(GROUPS, &group.name).await?.ok_or(StoreError::NotFound)?;
        let urow = self.t.get(USERS, &user.name).await?.ok_or(StoreError::NotFound)?;
        if decode::<Group>(&grow)?.id != group.id || decode::<User>(&urow)?.id != user.id {
            return Err(StoreError::NotFound);
        }
        let writes = vec![
            hold(GROUPS, &grow),
            hold(USERS, &urow),
            Write::put(
                format!("group-users#{}", num(group.id)),
                num(user.id),
                encode(&user.name)?,
                Cond::Any,
            ),
            Write::put(
                format!("user-groups#{}", num(user.id)),
                num(group.id),
                encode(&group.name)?,
                Cond::Any,
            ),
        ];
        self.t.transact(writes).await
    }

    /// Takes user `user_id` out of group `group_id`; `false` when it was not in it.
    pub async fn remove_group_user(&self, group_id: u64, user_id: u64) -> Result<bool, StoreError> {
        let pk = format!("group-users#{}", num(group_id));
        if self.t.get(&pk, &num(user_id)).await?.is_none() {
            return Ok(false);
        }
        self.t
            .transact(vec![
                Write::delete(pk, num(user_id), Cond::Any),
                Write::delete(format!("user-groups#{}", num(user_id)), num(group_id), Cond::Any),
            ])
            .await?;
        Ok(true)
    }

    /// The users in group `id`: their numbers and names, by number. One query.
    pub async fn group_users(&self, id: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = self
            .t
            .query(&format!("group-users#{}", num(id)), Query::prefix(""))
            .await?;
        rows.iter()
            .map(|r| Ok((r.sk.parse().unwrap_or(0), decode(r)?)))
            .collect()
    }

    /// The groups user `id` is in: their numbers and names. One query.
    pub async fn user_groups(&self, id: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = self
            .t
            .query(&format!("user-groups#{}", num(id)), Query::prefix(""))
            .await?;
        rows.iter()
            .map(|r| Ok((r.sk.parse().unwrap_or(0), decode(r)?)))
            .collect()
    }

    // ---- roles -----------------------------------------------------------------------------

    /// Records an assignment; `Conflict` when its holder has that role on that object already,
    /// `NotFound` when the holder is gone.
    pub async fn assign(&self, a: &RoleAssignment) -> Result<(), StoreError> {
        for attempt in 0..ID_ATTEMPTS {
            let held = match a.holder {
                Holder::User(id) => {
                    let name = self.user_by_id(id).await?.ok_or(StoreError::NotFound)?.name;
                    hold(USERS, &self.t.get(USERS, &name).await?.ok_or(StoreError::NotFound)?)
                }
                Holder::Group(id) => {
                    let name = self.group_by_id(id).await?.ok_or(StoreError::NotFound)?.name;
                    hold(GROUPS, &self.t.get(GROUPS, &name).await?.ok_or(StoreError::NotFound)?)
                }
            };
            let mut writes = vec![
                held,
                Write::put(a.holder.partition(), a.holder_sk(), encode(a)?, Cond::Absent),
            ];
            if let Some((pk, sk)) = a.object_rows() {
                writes.push(Write::put(pk, sk, encode(a)?, Cond::Any));
            }
            match self.t.transact(writes).await {
                Err(StoreError::Conflict(c)) => {
                    if self.t.get(&a.holder.partition(), &a.holder_sk()).await?.is_some() {
                        return Err(StoreError::Conflict(c));
                    }
                    // the holder changed meanwhile (or went: the next round finds out)
                    super::namespaces::hold_backoff(attempt.min(6)).await;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict("the holder kept changing".into()))
    }

    /// Removes an assignment (and its object row).
    pub async fn unassign(&self, a: &RoleAssignment) -> Result<(), StoreError> {
        let mut writes = vec![Write::delete(a.holder.partition(), a.holder_sk(), Cond::Any)];
        if let Some((pk, sk)) = a.object_rows() {
            writes.push(Write::delete(pk, sk, Cond::Any));
        }
        self.t.transact(writes).await
    }

    /// What `holder` was given, by role. One query.
    pub async fn holder_roles(&self, holder: Holder) -> Result<Vec<RoleAssignment>, StoreError> {
        self.all(&holder.partition()).await
    }

    /// What was given on `object`, to anyone. One query.
    pub async fn object_roles(&self, object: ObjectRef) -> Result<Vec<RoleAssignment>, StoreError> {
        self.all(&format!("object-roles#{}", object.key())).await
    }

    /// Removes every assignment on `object` (it was deleted).
    pub async fn drop_object_roles(&self, object: ObjectRef) -> Result<(), StoreError> {
        for a in self.object_roles(object).await? {
            self.unassign(&a).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory::MemoryTable;

    #[tokio::test]
    async fn users_stored_before_numbers_get_one_and_keep_their_password() {
        // Given a user as Berth stored them before users had numbers
        let store = Store::new(Arc::new(MemoryTable::new()));
        let legacy = br#"{"name":"old","password_hash":"$argon2id$x","admin":false}"#.to_vec();
        store.table().put(USERS, "old", legacy, Cond::Absent).await.unwrap();
        let new = store.create_user(&User::new("new", "h".into(), false)).await.unwrap();
        // When the users are numbered
        store.number_users().await.unwrap();
        // Then the old one has a number of its own, active, the hash kept
        let old = store.user("old").await.unwrap().unwrap();
        assert!(old.id != 0 && old.id != new.id);
        assert!(old.is_active);
        assert_eq!(old.password_hash, "$argon2id$x");
        assert_eq!(store.user_by_id(old.id).await.unwrap().unwrap().name, "old");
        store.number_users().await.unwrap();
        assert_eq!(store.user("old").await.unwrap().unwrap().id, old.id, "numbered once");
    }
}

//! What the management API keeps beyond content and versions: repository listing and
//! updates, remotes, distributions by id, tasks, users, and content ids.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `remotes` | `<id>` | [`Remote`] |
//! | `remote-names` | `<name>` | remote id |
//! | `dist-ids` | `<id>` | base path |
//! | `tasks` | `<inverted creation time>#<id>` | [`Task`] (newest first) |
//! | `task#<id>` | `_` | the task's sort key in `tasks` |
//! | `users` | `<name>` | [`User`] (see `accounts.rs`) |
//! | `cid#<uuid>` | `_` | an encoded content key |
//! | `content#<type prefix>/<shard>` | `<content key>` | [`IndexRow`]: `{"id", "at", "created", "size"}` (every unit ever added; when it last was, and when first; a blob's or manifest's bytes, see `totals.rs`) |

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use uuid::Uuid;

use super::repo_kinds::Listed;
use super::tally::Counted;
use super::{decode, encode, Distribution, Remote, Repository, Store};
use crate::domain::{ContentKey, ContentType};
use crate::ports::{Cond, Query, StoreError, Write};

/// The stable id of a content unit: derived from its key, the same in every installation.
pub fn content_id(key: &ContentKey) -> Uuid {
    let h = sha2::Sha256::digest(key.encode().as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// A size as a tally's amount.
fn signed(size: Option<u64>) -> i64 {
    size.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// A unit's row in its type's content index.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IndexRow {
    id: Uuid,
    /// When the unit was last added to a version (Unix seconds; orphan cleanup reads it).
    at: u64,
    /// When it was first added to a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<DateTime<Utc>>,
    /// A blob's or manifest's bytes when it was first added (rows written before sizes were
    /// kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

impl IndexRow {
    /// The size a stored row records.
    pub(crate) fn size_of(value: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct Size {
            #[serde(default)]
            size: Option<u64>,
        }
        serde_json::from_slice::<Size>(value).ok()?.size
    }

    /// The creation time a stored row gives. Rows written before creation times were kept
    /// give the earliest time they record: when the unit was last added to a version then
    /// (`{"id", "at"}`), or nothing (the first rows held the id alone). When the unit is next
    /// added, such a row keeps that time as its creation time (the first rows: the time of
    /// that addition, the earliest the store then knows of), so it no longer moves.
    pub(crate) fn created_of(value: &[u8]) -> Option<DateTime<Utc>> {
        #[derive(Deserialize)]
        struct Times {
            #[serde(default)]
            at: Option<u64>,
            #[serde(default)]
            created: Option<DateTime<Utc>>,
        }
        let t: Times = serde_json::from_slice(value).ok()?;
        t.created
            .or_else(|| DateTime::from_timestamp(i64::try_from(t.at?).ok()?, 0))
    }
}

impl Store {
    pub(super) async fn all<T: DeserializeOwned>(&self, pk: &str) -> Result<Vec<T>, StoreError> {
        let rows = self.t.query(pk, Query::prefix("")).await?;
        rows.iter().map(decode).collect()
    }

    /// Read-modify-write of one item under its revision (retried when someone else wrote).
    pub(super) async fn modify<T: DeserializeOwned + serde::Serialize, E: From<StoreError>>(
        &self,
        pk: &str,
        sk: &str,
        mut f: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<T, E> {
        loop {
            let row = self.t.get(pk, sk).await?.ok_or(StoreError::NotFound)?;
            let mut v: T = decode(&row)?;
            f(&mut v)?;
            match self.t.put(pk, sk, encode(&v)?, Cond::Rev(row.rev)).await {
                Ok(_) => return Ok(v),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Updates a named item under its revision. A rename writes the new name row, the item
    /// and the removal of the old name row in one transaction; `Conflict` when the new name
    /// is taken.
    pub(super) async fn update_named<T, E>(
        &self,
        names: &str,
        (pk, sk): (&str, &str),
        id: Uuid,
        name_of: impl Fn(&T) -> String,
        listed: impl Fn(&T) -> Option<Listed>,
        mut f: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<T, E>
    where
        T: DeserializeOwned + serde::Serialize + Clone,
        E: From<StoreError>,
    {
        loop {
            let row = self.t.get(pk, sk).await?.ok_or(StoreError::NotFound)?;
            let before: T = decode(&row)?;
            let mut after = before.clone();
            f(&mut after)?;
            let (old, new) = (name_of(&before), name_of(&after));
            let mut writes = vec![Write::put(pk, sk, encode(&after)?, Cond::Rev(row.rev))];
            let listed = listed(&before);
            let mut counted = Vec::new();
            if old != new {
                writes.push(Write::put(names, &new, encode(&id)?, Cond::Absent));
                let mut ours = false;
                if let Some(name_row) = self.t.get(names, &old).await? {
                    if decode::<Uuid>(&name_row)? == id {
                        writes.push(Write::delete(names, &old, Cond::Rev(name_row.rev)));
                        ours = true;
                    }
                }
                if let Some(l) = &listed {
                    writes.push(Write::put(&l.index, &new, encode(&id)?, Cond::Any));
                    counted.push(Counted::of(&new, &l.class, 1));
                    if ours {
                        writes.push(Write::delete(&l.index, &old, Cond::Any));
                        counted.push(Counted::of(&old, &l.class, -1));
                    }
                }
            }
            let counted = if counted.is_empty() {
                Vec::new()
            } else {
                vec![(names, counted)]
            };
            match self.transact_counted(writes, &counted).await {
                Ok(()) => return Ok(after),
                Err(StoreError::Conflict(c)) => {
                    let taken = match self.t.get(names, &new).await? {
                        Some(r) => decode::<Uuid>(&r)? != id,
                        None => false,
                    };
                    if old != new && taken {
                        return Err(StoreError::Conflict(c).into());
                    }
                    // the item or its old name row changed meanwhile: read again
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes a named item and its name row (when the row names it) in one transaction.
    /// When `listed`, it is also taken off that index, and counted out of the name rows' tally.
    pub(super) async fn delete_named(
        &self,
        names: &str,
        name: &str,
        id: Uuid,
        (pk, sk): (&str, &str),
        listed: Option<Listed>,
    ) -> Result<(), StoreError> {
        loop {
            let mut writes = vec![Write::delete(pk, sk, Cond::Any)];
            let mut counted = Vec::new();
            if let Some(row) = self.t.get(names, name).await? {
                if decode::<Uuid>(&row)? == id {
                    writes.push(Write::delete(names, name, Cond::Rev(row.rev)));
                    if let Some(l) = &listed {
                        writes.push(Write::delete(&l.index, name, Cond::Any));
                        counted.push((names, vec![Counted::of(name, &l.class, -1)]));
                    }
                }
            }
            match self.transact_counted(writes, &counted).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
    }

    // ---- repositories ----------------------------------------------------------------------

    /// Every repository, in name order.
    pub async fn repositories(&self) -> Result<Vec<Repository>, StoreError> {
        let mut out = Vec::new();
        for row in self.t.query("repo-names", Query::prefix("")).await? {
            let id: Uuid = decode(&row)?;
            if let Some(r) = self.repository(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Changes a repository's settings (never its versions or lease). A rename claims the
    /// new name first; `Conflict` when it is taken.
    pub async fn update_repository<E: From<StoreError>>(
        &self,
        id: Uuid,
        mut f: impl FnMut(&mut Repository) -> Result<(), E>,
    ) -> Result<Repository, E> {
        self.update_named(
            "repo-names",
            (&format!("repo#{id}"), "_"),
            id,
            |r: &Repository| r.name.clone(),
            |r: &Repository| Some(Listed::kind(r.kind)),
            |r| {
                let kept = r.clone();
                f(r)?;
                // what only version writers change
                r.latest_version = kept.latest_version;
                r.next_version = kept.next_version;
                r.deleted_version = kept.deleted_version;
                r.lease = kept.lease;
                r.recent_ops = kept.recent_ops;
                r.updated = chrono::Utc::now();
                Ok(())
            },
        )
        .await
    }

    /// Removes a repository: its name and its record together. Membership rows stay behind
    /// for garbage collection.
    pub async fn delete_repository(&self, repo: &Repository) -> Result<(), StoreError> {
        self.delete_named(
            "repo-names",
            &repo.name,
            repo.id,
            (&format!("repo#{}", repo.id), "_"),
            Some(Listed::kind(repo.kind)),
        )
        .await
    }

    // ---- remotes ---------------------------------------------------------------------------

    /// Creates a remote, its name and its item in one transaction. `Conflict` when the name
    /// is taken.
    pub async fn create_remote(&self, r: &Remote) -> Result<(), StoreError> {
        let mut sealed = r.clone();
        super::secrets::seal_remote(self.field_key.as_deref(), &mut sealed)?;
        let items = vec![Write::put("remotes", r.id.to_string(), encode(&sealed)?, Cond::Absent)];
        self.create_named(
            ("remote-names", &r.name),
            &r.id,
            items,
            &[],
            |row| Ok(("remotes".to_owned(), decode::<Uuid>(row)?.to_string())),
            |_| Ok(true),
        )
        .await
    }

    pub async fn remote(&self, id: Uuid) -> Result<Option<Remote>, StoreError> {
        Ok(match self.t.get("remotes", &id.to_string()).await? {
            Some(row) => {
                let mut r: Remote = decode(&row)?;
                super::secrets::open_remote(self.field_key.as_deref(), &mut r);
                Some(r)
            }
            None => None,
        })
    }

    pub async fn remote_by_name(&self, name: &str) -> Result<Option<Remote>, StoreError> {
        match self.get_json::<Uuid>("remote-names", name).await? {
            Some((_, id)) => self.remote(id).await,
            None => Ok(None),
        }
    }

    /// Every remote, in name order.
    pub async fn remotes(&self) -> Result<Vec<Remote>, StoreError> {
        let mut all: Vec<Remote> = self.all("remotes").await?;
        for r in &mut all {
            super::secrets::open_remote(self.field_key.as_deref(), r);
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    pub async fn update_remote<E: From<StoreError>>(
        &self,
        id: Uuid,
        mut f: impl FnMut(&mut Remote) -> Result<(), E>,
    ) -> Result<Remote, E> {
        self.update_named(
            "remote-names",
            ("remotes", &id.to_string()),
            id,
            |r: &Remote| r.name.clone(),
            |_: &Remote| None,
            |r| {
                super::secrets::open_remote(self.field_key.as_deref(), r);
                f(r)?;
                r.updated = chrono::Utc::now();
                super::secrets::seal_remote(self.field_key.as_deref(), r)?;
                Ok(())
            },
        )
        .await
        .map(|mut r| {
            super::secrets::open_remote(self.field_key.as_deref(), &mut r);
            r
        })
    }

    pub async fn delete_remote(&self, r: &Remote) -> Result<(), StoreError> {
        self.delete_named("remote-names", &r.name, r.id, ("remotes", &r.id.to_string()), None)
            .await
    }

    // ---- distributions ---------------------------------------------------------------------

    pub async fn distribution(&self, id: Uuid) -> Result<Option<Distribution>, StoreError> {
        let Some(row) = self.t.get("dist-ids", &id.to_string()).await? else {
            return Ok(None);
        };
        let base_path: String = decode(&row)?;
        Ok(match self.t.get("dists", &base_path).await? {
            Some(row) => Some(decode::<Distribution>(&row)?).filter(|d| d.id == id),
            None => None,
        })
    }

    /// Replaces a distribution (same id): the distribution, its name row, its id index and its
    /// namespace (made when the new base path starts a new one) in one transaction. A new name
    /// or base path must be free; `Conflict` when taken.
    pub async fn replace_distribution(&self, before: &Distribution, after: &Distribution) -> Result<(), StoreError> {
        self.write_holding_namespace(after, |after, writes| self.replace_with(before, after, writes))
            .await
    }

    async fn replace_with(
        &self,
        before: &Distribution,
        after: Distribution,
        mut writes: Vec<Write>,
    ) -> Result<(), StoreError> {
        let after = &after;
        let path = encode(&after.base_path)?;
        if after.base_path != before.base_path {
            writes.push(Write::put(
                "dists",
                after.base_path.as_str(),
                encode(after)?,
                Cond::Absent,
            ));
            writes.push(Write::delete("dists", before.base_path.as_str(), Cond::Any));
            writes.push(Write::put("dist-ids", after.id.to_string(), path.clone(), Cond::Any));
        } else {
            writes.push(Write::put("dists", after.base_path.as_str(), encode(after)?, Cond::Any));
        }
        if after.name != before.name {
            writes.push(Write::put("dist-names", &after.name, path, Cond::Absent));
            writes.push(Write::delete("dist-names", &before.name, Cond::Any));
        } else if after.base_path != before.base_path {
            writes.push(Write::put("dist-names", &after.name, path, Cond::Any));
        }
        if (before.base_path != after.base_path)
            || (before.pull_through, before.cached_by) != (after.pull_through, after.cached_by)
        {
            writes.extend(super::pull_through_index::rows(before, false)?);
            writes.extend(super::pull_through_index::rows(after, true)?);
        }
        let counted = [(
            "dists",
            vec![
                Counted::added(after.base_path.as_str()),
                Counted::removed(before.base_path.as_str()),
            ],
        )];
        let moved = if after.base_path != before.base_path {
            &counted[..]
        } else {
            &[]
        };
        self.transact_counted(writes, moved).await
    }

    /// Removes a distribution, its name row and its id index together.
    pub async fn delete_distribution(&self, d: &Distribution) -> Result<(), StoreError> {
        loop {
            let row = self.t.get("dists", d.base_path.as_str()).await?;
            let Some(row) = row.filter(|row| decode::<Distribution>(row).is_ok_and(|x| x.id == d.id)) else {
                // gone already (its name may be another's by now)
                return self.t.delete("dist-ids", &d.id.to_string(), Cond::Any).await;
            };
            let stored: Distribution = decode(&row)?;
            let mut writes = vec![
                Write::delete("dists", d.base_path.as_str(), Cond::Rev(row.rev)),
                Write::delete("dist-names", &d.name, Cond::Any),
                Write::delete("dist-ids", d.id.to_string(), Cond::Any),
            ];
            writes.extend(super::pull_through_index::rows(&stored, false)?);
            let counted = [("dists", vec![Counted::removed(d.base_path.as_str())])];
            match self.transact_counted(writes, &counted).await {
                // changed meanwhile: look again
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
    }

    /// Whether any distribution's base path is `path`'s ancestor or descendant (Pulp forbids
    /// nested base paths). Returns the one it found.
    pub async fn overlapping_distribution(
        &self,
        path: &str,
        except: Option<Uuid>,
    ) -> Result<Option<Distribution>, StoreError> {
        let mut ancestor = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !ancestor.is_empty() {
                ancestor.push('/');
            }
            ancestor.push_str(p);
            if let Some(row) = self.t.get("dists", &ancestor).await? {
                let d: Distribution = decode(&row)?;
                if Some(d.id) != except {
                    return Ok(Some(d));
                }
            }
        }
        for row in self.t.query("dists", Query::prefix(format!("{path}/"))).await? {
            let d: Distribution = decode(&row)?;
            if Some(d.id) != except {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    // ---- content ids -----------------------------------------------------------------------

    /// Remembers a content unit's id and, the first time, when it was created (idempotent).
    /// Called for every unit added to a version: a unit is created when first added, as Pulp
    /// creates a content unit when a sync or push first brings it. Later calls rewrite the
    /// index row (its revision changes, which orphan cleanup relies on) and keep that time.
    pub async fn record_content(&self, key: &ContentKey) -> Result<Uuid, StoreError> {
        let id = content_id(key);
        let enc = key.encode();
        self.t.put(&format!("cid#{id}"), "_", encode(&enc)?, Cond::Any).await?;
        let index = format!("content#{}", key.content_type().prefix());
        let pk = super::shards::shard(&index, &enc);
        let now = Utc::now();
        let mut row = IndexRow {
            id,
            at: crate::ports::unix_now(),
            created: Some(now),
            size: None,
        };
        let weighed = matches!(key, ContentKey::Blob(_) | ContentKey::Manifest(_));
        let mut size = None;
        for attempt in 0u32.. {
            if attempt > 0 {
                super::namespaces::hold_backoff(attempt - 1).await;
            }
            if let Some(old) = self.t.get(&pk, &enc).await? {
                // recorded before: keep the time it was created
                row.created = Some(IndexRow::created_of(&old.value).unwrap_or(now));
                row.size = IndexRow::size_of(&old.value);
                match self.t.put(&pk, &enc, encode(&row)?, Cond::Rev(old.rev)).await {
                    Err(StoreError::Conflict(_)) => continue,
                    other => return other.map(|_| id),
                }
            }
            // new in its shard, and counted there; a row an older version wrote in the
            // index's own partition keeps its time, and moves
            let mut writes = vec![self.tally_write(&pk, &[Counted::added(&enc)]).await?];
            row.created = Some(now);
            if weighed && size.is_none() {
                size = Some(self.unit_size(key).await?);
            }
            row.size = size;
            writes.extend(self.bytes_write(&pk, &enc, signed(size)).await?);
            if let Some(old) = self.t.get(&index, &enc).await? {
                row.created = Some(IndexRow::created_of(&old.value).unwrap_or(now));
                writes.push(Write::delete(&index, &enc, Cond::Rev(old.rev)));
                writes.push(self.tally_write(&index, &[Counted::removed(&enc)]).await?);
                let old_bytes = self.row_bytes(&enc, &old.value).await?;
                writes.extend(self.bytes_write(&index, &enc, -signed(Some(old_bytes))).await?);
            }
            writes.push(Write::put(&pk, &enc, encode(&row)?, Cond::Absent));
            match self.t.transact(writes).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return other.map(|_| id),
            }
        }
        unreachable!("the attempts never run out")
    }

    /// When a content unit was created: first added to a version (see [`IndexRow::created_of`]
    /// for units recorded before that time was kept). `None` for a unit never added, or whose
    /// row records no time at all. One read.
    pub async fn content_created(&self, key: &ContentKey) -> Result<Option<DateTime<Utc>>, StoreError> {
        let index = format!("content#{}", key.content_type().prefix());
        let enc = key.encode();
        let row = match self.t.get(&super::shards::shard(&index, &enc), &enc).await? {
            Some(row) => Some(row),
            // recorded by an older version, in the index's own partition
            None => self.t.get(&index, &enc).await?,
        };
        Ok(row.and_then(|row| IndexRow::created_of(&row.value)))
    }

    pub async fn content_by_id(&self, id: Uuid) -> Result<Option<ContentKey>, StoreError> {
        Ok(match self.t.get(&format!("cid#{id}"), "_").await? {
            Some(row) => ContentKey::decode(&decode::<String>(&row)?),
            None => None,
        })
    }

    /// Every unit of a type ever added to any repository, in key order: every shard of the
    /// index, merged.
    pub async fn all_content(&self, ty: ContentType) -> Result<Vec<ContentKey>, StoreError> {
        let mut keys = Vec::new();
        for pk in super::shards::partitions(&format!("content#{}", ty.prefix())) {
            let rows = self.t.query(&pk, Query::prefix("")).await?;
            keys.extend(rows.iter().filter_map(|r| ContentKey::decode(&r.sk)));
        }
        keys.sort_by_cached_key(|k| k.encode());
        keys.dedup();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::domain::{Digest, Tag};
    use crate::ports::Table;

    fn tag(name: &str) -> ContentKey {
        ContentKey::Tag {
            name: Tag::parse(name).unwrap(),
            manifest: Digest::sha256_of(name.as_bytes()),
        }
    }

    #[tokio::test]
    async fn a_unit_keeps_the_time_it_was_first_recorded() {
        let table = Arc::new(MemoryTable::new());
        let store = Store::new(table.clone());
        let key = tag("v1");
        assert_eq!(store.content_created(&key).await.unwrap(), None, "never added");

        // Given a unit recorded once, when it is recorded again later,
        let before = Utc::now();
        store.record_content(&key).await.unwrap();
        let first = store.content_created(&key).await.unwrap().unwrap();
        assert!(first >= before && first <= Utc::now());
        let pk = crate::store::shards::shard("content#t#", &key.encode());
        let rev = table.get(&pk, &key.encode()).await.unwrap().unwrap().rev;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store.record_content(&key).await.unwrap();

        // then it keeps its creation time, and its index row was rewritten (orphan cleanup
        // relies on the new revision)
        assert_eq!(store.content_created(&key).await.unwrap(), Some(first));
        let row = table.get(&pk, &key.encode()).await.unwrap().unwrap();
        assert_ne!(row.rev, rev);
        let v: serde_json::Value = serde_json::from_slice(&row.value).unwrap();
        assert_eq!(v["id"], json_id(&key));
        assert!(v["at"].as_u64().unwrap() >= before.timestamp() as u64);
    }

    fn json_id(key: &ContentKey) -> serde_json::Value {
        serde_json::json!(content_id(key))
    }

    #[tokio::test]
    async fn rows_written_before_creation_times_were_kept_give_the_time_they_have() {
        let table = Arc::new(MemoryTable::new());
        let store = Store::new(table.clone());
        // Given index rows as earlier versions wrote them: with the time the unit was last
        // added, and (the first ones) with its id alone
        let (timed, bare) = (tag("timed"), tag("bare"));
        let old = serde_json::json!({"id": content_id(&timed), "at": 1_700_000_000u64});
        table
            .put(
                "content#t#",
                &timed.encode(),
                serde_json::to_vec(&old).unwrap(),
                Cond::Any,
            )
            .await
            .unwrap();
        table
            .put(
                "content#t#",
                &bare.encode(),
                serde_json::to_vec(&content_id(&bare)).unwrap(),
                Cond::Any,
            )
            .await
            .unwrap();
        let then = DateTime::from_timestamp(1_700_000_000, 0).unwrap();

        // then the first gives that time, the second none
        assert_eq!(store.content_created(&timed).await.unwrap(), Some(then));
        assert_eq!(store.content_created(&bare).await.unwrap(), None);

        // and when the units are added again, the first keeps it as its creation time and
        // the second gets the time of that addition, neither moving afterwards
        let before = Utc::now();
        store.record_content(&timed).await.unwrap();
        store.record_content(&bare).await.unwrap();
        assert_eq!(store.content_created(&timed).await.unwrap(), Some(then));
        // the rows moved to their shards
        for k in [&timed, &bare] {
            assert!(table.get("content#t#", &k.encode()).await.unwrap().is_none());
        }
        let bare_at = store.content_created(&bare).await.unwrap().unwrap();
        assert!(bare_at >= before);
        store.record_content(&timed).await.unwrap();
        store.record_content(&bare).await.unwrap();
        assert_eq!(store.content_created(&timed).await.unwrap(), Some(then));
        assert_eq!(store.content_created(&bare).await.unwrap(), Some(bare_at));
        // and the ids still resolve
        assert_eq!(store.content_by_id(content_id(&bare)).await.unwrap(), Some(bare));
    }
}

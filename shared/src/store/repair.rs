//! Finding and repairing names that versions before atomic names could leave behind
//! (DESIGN invariant 6). Since names and the items they name are written in one transaction,
//! none of this can arise anew; the check runs at start to mend data written before.
//!
//! What it finds, and what it does:
//! - a name row that names no item (a create that crashed between its two writes): removed;
//! - a repository a distribution serves whose name row names another repository (two racing
//!   creates of one name, each of which wrote its item): when the other one is empty (version 0
//!   only) and served by no distribution, the name is given to the served repository and the
//!   empty one is removed; otherwise the served one is renamed `<name>-<first 8 hex of its id>`
//!   so both are listed (and orphan cleanup sees both);
//! - a served repository, a distribution or a remote without its name row: the row is restored
//!   (or, when the name is taken by another live item, the item is renamed as above);
//! - a distribution without its namespace (written before namespaces): it is given the
//!   namespace of its base path, which is made when missing.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::{decode, encode, Distribution, Remote, Repository, Store};
use crate::ports::{Cond, Query, StoreError, Write};

/// What [`Store::repair_names`] found and did, one line each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NameRepairs {
    pub actions: Vec<String>,
}

impl NameRepairs {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// A name for a duplicate that keeps it apart from the original.
fn renamed(name: &str, id: Uuid) -> String {
    format!("{name}-{}", &id.simple().to_string()[..8])
}

impl Store {
    /// Finds and repairs name rows and items that disagree (see the module's docs). Reads every
    /// name row, distribution and remote once: run it at start, not per request.
    pub async fn repair_names(&self) -> Result<NameRepairs, StoreError> {
        let mut out = NameRepairs::default();
        self.repair_name_rows("repo-names", &mut out, |id| (format!("repo#{id}"), "_".to_owned()))
            .await?;
        self.repair_name_rows("remote-names", &mut out, |id| ("remotes".to_owned(), id.to_string()))
            .await?;
        self.repair_served_repositories(&mut out).await?;
        self.repair_remotes(&mut out).await?;
        self.repair_namespaces(&mut out).await?;
        if !out.is_empty() {
            self.reset_repository_index().await?;
        }
        Ok(out)
    }

    /// Removes name rows whose item is gone.
    async fn repair_name_rows(
        &self,
        names: &str,
        out: &mut NameRepairs,
        item_of: impl Fn(Uuid) -> (String, String),
    ) -> Result<(), StoreError> {
        for row in self.t.query(names, Query::prefix("")).await? {
            let id: Uuid = decode(&row)?;
            let (pk, sk) = item_of(id);
            if self.t.get(&pk, &sk).await?.is_none() {
                match self.t.delete(names, &row.sk, Cond::Rev(row.rev)).await {
                    Ok(()) => out.actions.push(format!(
                        "{names}: removed {:?}, which named a missing item {id}",
                        row.sk
                    )),
                    Err(StoreError::Conflict(_)) => {} // rewritten meanwhile: it is live
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn all_distributions(&self) -> Result<Vec<Distribution>, StoreError> {
        let rows = self.t.query("dists", Query::prefix("")).await?;
        rows.iter().map(decode).collect()
    }

    /// Gives every repository a distribution serves its name row, and every distribution its
    /// name row and id index.
    async fn repair_served_repositories(&self, out: &mut NameRepairs) -> Result<(), StoreError> {
        let dists = self.all_distributions().await?;
        let served: HashSet<Uuid> = dists.iter().filter_map(|d| d.repository).collect();
        for d in &dists {
            if self.t.get("dist-names", &d.name).await?.is_none() {
                self.t
                    .put("dist-names", &d.name, encode(&d.base_path)?, Cond::Absent)
                    .await?;
                out.actions
                    .push(format!("distribution {:?}: restored its name row", d.name));
            }
            if self.t.get("dist-ids", &d.id.to_string()).await?.is_none() {
                self.t
                    .put("dist-ids", &d.id.to_string(), encode(&d.base_path)?, Cond::Absent)
                    .await?;
                out.actions
                    .push(format!("distribution {:?}: restored its id index", d.name));
            }
            let Some(rid) = d.repository else { continue };
            let Some((rev, repo)) = self.repository_rev(rid).await? else {
                continue;
            };
            let name_row = self.t.get("repo-names", &repo.name).await?;
            let named = match &name_row {
                Some(row) => decode::<Uuid>(row)?,
                None => {
                    self.t
                        .put("repo-names", &repo.name, encode(&rid)?, Cond::Absent)
                        .await?;
                    out.actions.push(format!(
                        "repository {:?} ({rid}), served by {:?}: restored its name row",
                        repo.name, d.name
                    ));
                    continue;
                }
            };
            if named == rid {
                continue;
            }
            let Some(row) = name_row else { continue };
            let other = self.repository_rev(named).await?;
            match other {
                Some((other_rev, o)) if o.latest_version == 0 && !served.contains(&o.id) => {
                    self.t
                        .transact(vec![
                            Write::put("repo-names", &repo.name, encode(&rid)?, Cond::Rev(row.rev)),
                            Write::delete(format!("repo#{}", o.id), "_", Cond::Rev(other_rev)),
                        ])
                        .await?;
                    out.actions.push(format!(
                        "repository {:?}: the name now names {rid}, which {:?} serves; removed the empty duplicate {}",
                        repo.name, d.name, o.id
                    ));
                }
                _ => {
                    let new = renamed(&repo.name, rid);
                    self.rename_hidden(
                        "repo-names",
                        &new,
                        rid,
                        (&format!("repo#{rid}"), "_"),
                        rev,
                        |r: &mut Repository| r.name = new.clone(),
                    )
                    .await?;
                    out.actions.push(format!(
                        "repository {:?} ({rid}), served by {:?}, shared its name with {named}: renamed {new:?}",
                        repo.name, d.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Gives every remote its own name row; remotes that share a name with another are renamed.
    async fn repair_remotes(&self, out: &mut NameRepairs) -> Result<(), StoreError> {
        let mut rows: BTreeMap<String, (u64, Remote)> = BTreeMap::new();
        for row in self.t.query("remotes", Query::prefix("")).await? {
            let r: Remote = decode(&row)?;
            rows.insert(row.sk.clone(), (row.rev, r));
        }
        for (rev, r) in rows.into_values() {
            match self.t.get("remote-names", &r.name).await? {
                Some(row) if decode::<Uuid>(&row)? == r.id => {}
                Some(_) => {
                    let new = renamed(&r.name, r.id);
                    self.rename_hidden(
                        "remote-names",
                        &new,
                        r.id,
                        ("remotes", &r.id.to_string()),
                        rev,
                        |x: &mut Remote| x.name = new.clone(),
                    )
                    .await?;
                    out.actions.push(format!(
                        "remote {:?} ({}) shared its name: renamed {new:?}",
                        r.name, r.id
                    ));
                }
                None => {
                    self.t
                        .put("remote-names", &r.name, encode(&r.id)?, Cond::Absent)
                        .await?;
                    out.actions
                        .push(format!("remote {:?} ({}): restored its name row", r.name, r.id));
                }
            }
        }
        Ok(())
    }

    /// Renames an item that has no name row of its own: the new name row and the item, in
    /// one transaction.
    async fn rename_hidden<T: serde::de::DeserializeOwned + serde::Serialize>(
        &self,
        names: &str,
        new: &str,
        id: Uuid,
        (pk, sk): (&str, &str),
        rev: u64,
        set: impl FnOnce(&mut T),
    ) -> Result<(), StoreError> {
        let row = self.t.get(pk, sk).await?.ok_or(StoreError::NotFound)?;
        if row.rev != rev {
            return Err(StoreError::Conflict(format!("{pk} changed during the repair")));
        }
        let mut item: T = decode(&row)?;
        set(&mut item);
        self.t
            .transact(vec![
                Write::put(names, new, encode(&id)?, Cond::Absent),
                Write::put(pk, sk, encode(&item)?, Cond::Rev(rev)),
            ])
            .await
    }
}

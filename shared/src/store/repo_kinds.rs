//! Repositories by kind, so that a page of one kind's list is one query.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `repos#push` / `repos#mirror` | `<name>` | repository id |
//!
//! The row is written and removed in the transactions that create, rename and delete the
//! repository. The tally of `repo-names` counts the names by kind (see `tally.rs`); the first
//! count walks the names in batches and, in the same transaction as each step of the count,
//! lists the repositories an older version wrote: it rewrites each name row at the revision
//! it read (so a rename or delete meanwhile fails the step, which is read again) together with
//! its index row. Until that walk is complete, lists read the names instead.
//!
//! Layering: part of `store`, which knows `domain` and `ports` only.

use uuid::Uuid;

use super::lists::{Listing, Page};
use super::tally::{tally_pk, Tally};
use super::{decode, encode, Repository, RepositoryKind, Store};
use crate::ports::{Cond, Query, StoreError, Write, MAX_TRANSACT};

/// Where a named item is listed besides its name row: an index partition, and the class its
/// name row is counted under in the name rows' tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub index: String,
    pub class: String,
}

impl Listed {
    /// Where a repository of `kind` is listed.
    pub fn kind(kind: RepositoryKind) -> Self {
        let class = kind_name(kind);
        Listed {
            index: format!("repos#{class}"),
            class: class.to_owned(),
        }
    }
}

fn kind_name(kind: RepositoryKind) -> &'static str {
    match kind {
        RepositoryKind::Push => "push",
        RepositoryKind::Mirror => "mirror",
    }
}

/// How many names one step of the first count reads: each takes two writes, and the tally one.
const WALK_BATCH: usize = (MAX_TRANSACT - 1) / 2;

impl Store {
    /// How many repositories there are of each kind (see the module's docs): one read once
    /// counted.
    async fn repository_tally(&self) -> Result<Tally, StoreError> {
        let pk = tally_pk("repo-names");
        loop {
            let (cond, mut tally) = self.read_tally(&pk).await?;
            if tally.complete {
                return Ok(tally);
            }
            let q = Query::prefix("").after(tally.through.clone()).limit(WALK_BATCH);
            let rows = self.t.query("repo-names", q).await?;
            let mut writes = Vec::new();
            for row in &rows {
                let id: Uuid = decode(row)?;
                let Some(repo) = self.repository(id).await? else {
                    continue; // a name of nothing: not counted
                };
                let listed = Listed::kind(repo.kind);
                writes.push(Write::put("repo-names", &row.sk, row.value.clone(), Cond::Rev(row.rev)));
                writes.push(Write::put(&listed.index, &row.sk, encode(&id)?, Cond::Any));
                *tally.counts.entry(listed.class).or_default() += 1;
            }
            if rows.len() == WALK_BATCH {
                tally.through = rows.last().map(|r| r.sk.clone());
            } else {
                tally.complete = true;
                tally.through = None;
            }
            writes.push(Write::put(&pk, "_", encode(&tally)?, cond));
            match self.t.transact(writes).await {
                Ok(()) | Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Repositories of `kind` in name order: one query of the kind's index up to the end of
    /// the page, one read per repository of the page, and a count from the tally, whatever the
    /// number of repositories.
    pub async fn repository_range(&self, kind: RepositoryKind, page: Page) -> Result<Listing<Repository>, StoreError> {
        let count = self.repository_tally().await?.count(kind_name(kind)) as usize;
        let end = page.offset.saturating_add(page.limit).min(count);
        let mut items = Vec::new();
        if page.offset < end {
            let index = Listed::kind(kind).index;
            for row in self
                .t
                .query(&index, Query::prefix("").limit(end))
                .await?
                .iter()
                .skip(page.offset)
            {
                if let Some(r) = self.repository(decode(row)?).await? {
                    items.push(r);
                }
            }
        }
        Ok(Listing { count, items })
    }

    /// Forgets the index and its count, to be built again by the next count: after a repair
    /// of name rows changed what names what.
    pub(super) async fn reset_repository_index(&self) -> Result<(), StoreError> {
        self.t.delete(&tally_pk("repo-names"), "_", Cond::Any).await?;
        for kind in [RepositoryKind::Push, RepositoryKind::Mirror] {
            let index = Listed::kind(kind).index;
            for row in self.t.query(&index, Query::prefix("")).await? {
                self.t.delete(&index, &row.sk, Cond::Any).await?;
            }
        }
        Ok(())
    }
}

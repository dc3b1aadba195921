//! Membership: which content is in which version of a repository, and the tag index.
//!
//! A unit's membership rows (`members#<repo>`, `<content key>#<added>`) cover disjoint ranges
//! of versions, so the only row that can hold it in version N is the one with the latest
//! `added` at or before N: one reverse query of one item, however often the unit came and
//! went.
//!
//! A tag's membership rows are keyed by tag *and* manifest, so a tag moved 10,000 times has
//! 10,000 rows under its name. The tag index (`tags#<repo>`, `<tag>#<added>`, a [`TagRow`])
//! keys the same rows by tag and version: the tag's manifest in version N is the index row
//! with the latest `added` at or before N, one reverse query whatever the tag's history. Each
//! index row is written in one transaction with its membership row, so the two never
//! disagree.
//!
//! Repositories made before the index existed have `tag_index == false`: their reads walk the
//! membership rows, and the next writer fills the index under its lease before it sets the
//! flag (see [`Store::upgrade`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, encode, key_of_member, num, Membership, Repository, Store, VersionWriter, WriteError, PAGE};
use crate::domain::{ContentKey, ContentType, Digest, Tag};
use crate::ports::{Cond, Query, Row, StoreError, Write};

/// A tag's row in the tag index: the manifest it pointed to from version `added` until
/// `removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRow {
    pub manifest: Digest,
    pub added: u64,
    #[serde(default)]
    pub removed: Option<u64>,
}

impl TagRow {
    fn membership(&self) -> Membership {
        Membership {
            added: self.added,
            removed: self.removed,
        }
    }
}

fn index_sk(tag: &str, added: u64) -> String {
    format!("{tag}#{}", num(added))
}

/// The tag an index row's sort key names.
fn tag_of_index(sk: &str) -> &str {
    sk.rsplit_once('#').map_or(sk, |(t, _)| t)
}

/// A reverse query for the row of `prefix` with the latest number at or before `n`.
fn at_or_before(prefix: &str, n: u64) -> Query {
    Query::prefix(format!("{prefix}#"))
        .after(Some(format!("{prefix}#{}", num(n.saturating_add(1)))))
        .reverse()
        .limit(1)
}

impl Store {
    /// Every membership row of `key`, oldest first.
    pub(super) async fn member_rows(&self, repo: Uuid, key: &ContentKey) -> Result<Vec<(Row, Membership)>, StoreError> {
        let rows = self
            .t
            .query(&format!("members#{repo}"), Query::prefix(format!("{}#", key.encode())))
            .await?;
        rows.into_iter()
            .map(|r| {
                let m: Membership = decode(&r)?;
                Ok((r, m))
            })
            .collect()
    }

    /// The membership row of `key` with the latest `added` at or before `n`: the only row that
    /// can hold `key` in version `n`.
    pub(super) async fn member_at(
        &self,
        repo: Uuid,
        key: &ContentKey,
        n: u64,
    ) -> Result<Option<(Row, Membership)>, StoreError> {
        let rows = self
            .t
            .query(&format!("members#{repo}"), at_or_before(&key.encode(), n))
            .await?;
        match rows.into_iter().next() {
            Some(r) => {
                let m: Membership = decode(&r)?;
                Ok(Some((r, m)))
            }
            None => Ok(None),
        }
    }

    /// Whether `key` is in version `number` of the repository. One read.
    pub async fn contains(&self, repo: Uuid, number: u64, key: &ContentKey) -> Result<bool, StoreError> {
        Ok(self
            .member_at(repo, key, number)
            .await?
            .is_some_and(|(_, m)| m.in_version(number)))
    }

    /// Writes the membership row of `key` that starts at `m.added` if `cond` holds, and for a
    /// tag its index row, in one transaction.
    pub(super) async fn put_member(
        &self,
        repo: Uuid,
        key: &ContentKey,
        m: &Membership,
        cond: Cond,
    ) -> Result<(), StoreError> {
        let members = format!("members#{repo}");
        let sk = format!("{}#{}", key.encode(), num(m.added));
        match key {
            ContentKey::Tag { name, manifest } => {
                let row = TagRow {
                    manifest: manifest.clone(),
                    added: m.added,
                    removed: m.removed,
                };
                self.t
                    .transact(vec![
                        Write::put(members, sk, encode(m)?, cond),
                        Write::put(
                            format!("tags#{repo}"),
                            index_sk(name.as_str(), m.added),
                            encode(&row)?,
                            Cond::Any,
                        ),
                    ])
                    .await
            }
            _ => self.t.put(&members, &sk, encode(m)?, cond).await.map(|_| ()),
        }
    }

    /// Deletes the membership row of `key` that starts at `added` if `cond` holds, and for a
    /// tag its index row (when it still names this manifest), in one transaction.
    pub(super) async fn delete_member(
        &self,
        repo: Uuid,
        key: &ContentKey,
        added: u64,
        cond: Cond,
    ) -> Result<(), StoreError> {
        let members = format!("members#{repo}");
        let sk = format!("{}#{}", key.encode(), num(added));
        if let ContentKey::Tag { name, manifest } = key {
            let (pk, isk) = (format!("tags#{repo}"), index_sk(name.as_str(), added));
            if let Some(row) = self.t.get(&pk, &isk).await? {
                if decode::<TagRow>(&row)?.manifest == *manifest {
                    return self
                        .t
                        .transact(vec![
                            Write::delete(members, sk, cond),
                            Write::delete(pk, isk, Cond::Rev(row.rev)),
                        ])
                        .await;
                }
            }
        }
        self.t.delete(&members, &sk, cond).await
    }

    /// The manifest `tag` points to in version `number`: one read on an indexed repository.
    pub async fn tag(&self, repo: &Repository, number: u64, tag: &Tag) -> Result<Option<Digest>, StoreError> {
        if !repo.tag_index {
            return self.tag_by_members(repo.id, number, tag).await;
        }
        let rows = self
            .t
            .query(&format!("tags#{}", repo.id), at_or_before(tag.as_str(), number))
            .await?;
        match rows.first() {
            Some(row) => {
                let t: TagRow = decode(row)?;
                Ok(t.membership().in_version(number).then_some(t.manifest))
            }
            None => Ok(None),
        }
    }

    /// [`Store::tag`] before the index: every membership row the tag ever had.
    async fn tag_by_members(&self, repo: Uuid, number: u64, tag: &Tag) -> Result<Option<Digest>, StoreError> {
        let rows = self
            .t
            .query(&format!("members#{repo}"), Query::prefix(format!("t#{tag}#")))
            .await?;
        for row in &rows {
            let m: Membership = decode(row)?;
            if m.in_version(number) {
                if let Some(ContentKey::Tag { manifest, .. }) = key_of_member(&row.sk) {
                    return Ok(Some(manifest));
                }
            }
        }
        Ok(None)
    }

    /// Content of one type in version `number`, in key order, after `after` (an encoded key),
    /// at most `limit`. Tags of an indexed repository come from the tag index.
    pub async fn content(
        &self,
        repo: &Repository,
        number: u64,
        ty: ContentType,
        after: Option<&ContentKey>,
        limit: usize,
    ) -> Result<Vec<ContentKey>, StoreError> {
        if ty == ContentType::Tag && repo.tag_index {
            let after = match after {
                Some(ContentKey::Tag { name, .. }) => Some(name.as_str()),
                _ => None,
            };
            let tags = self.tagged(repo, number, after, limit).await?;
            return Ok(tags
                .into_iter()
                .map(|(name, manifest)| ContentKey::Tag { name, manifest })
                .collect());
        }
        let pk = format!("members#{}", repo.id);
        let mut cursor = after.map(|k| format!("{}#\u{7f}", k.encode()));
        let mut out = Vec::new();
        loop {
            let rows = self
                .t
                .query(&pk, Query::prefix(ty.prefix()).after(cursor.clone()).limit(PAGE))
                .await?;
            let n = rows.len();
            for row in &rows {
                let m: Membership = decode(row)?;
                if m.in_version(number) {
                    if let Some(k) = key_of_member(&row.sk) {
                        out.push(k);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            if n < PAGE {
                return Ok(out);
            }
            cursor = rows.last().map(|r| r.sk.clone());
        }
    }

    /// Tag names in version `number`, sorted, after `after`, at most `limit`.
    pub async fn tags(
        &self,
        repo: &Repository,
        number: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Tag>, StoreError> {
        if repo.tag_index {
            let tags = self.tagged(repo, number, after, limit).await?;
            return Ok(tags.into_iter().map(|(t, _)| t).collect());
        }
        let pk = format!("members#{}", repo.id);
        let mut cursor = after.map(|t| format!("t#{t}#\u{7f}"));
        let mut out: Vec<Tag> = Vec::new();
        loop {
            let rows = self
                .t
                .query(&pk, Query::prefix("t#").after(cursor.clone()).limit(PAGE))
                .await?;
            let n = rows.len();
            for row in &rows {
                let m: Membership = decode(row)?;
                if !m.in_version(number) {
                    continue;
                }
                if let Some(ContentKey::Tag { name, .. }) = key_of_member(&row.sk) {
                    if out.last() != Some(&name) {
                        out.push(name);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            if n < PAGE {
                return Ok(out);
            }
            cursor = rows.last().map(|r| r.sk.clone());
        }
    }

    /// Tags of version `number` and their manifests, by name, after `after`, at most `limit`,
    /// from the tag index. Reads the index in batches; a tag whose rows run past a batch costs
    /// one more read that jumps to its row for `number`, so a tag's history costs at most one
    /// read however long it is.
    async fn tagged(
        &self,
        repo: &Repository,
        number: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Tag, Digest)>, StoreError> {
        let pk = format!("tags#{}", repo.id);
        let batch = limit.saturating_mul(2).clamp(16, PAGE);
        // '#' sorts before every character a tag may hold, so "<tag>#\x7f" is past all of the
        // tag's rows and before any longer tag's
        let mut cursor = after.map(|t| format!("{t}#\u{7f}"));
        let mut out = Vec::new();
        while out.len() < limit {
            let rows = self
                .t
                .query(&pk, Query::prefix("").after(cursor.clone()).limit(batch))
                .await?;
            let full = rows.len() == batch;
            let mut i = 0;
            while i < rows.len() && out.len() < limit {
                let name = tag_of_index(&rows[i].sk);
                let mut j = i;
                while j < rows.len() && tag_of_index(&rows[j].sk) == name {
                    j += 1;
                }
                // the batch holds every row of the tag unless it ends inside them
                let whole = j < rows.len() || !full;
                let row = if whole {
                    let mut found = None;
                    for r in rows[i..j].iter().rev() {
                        let t: TagRow = decode(r)?;
                        if t.added <= number {
                            found = Some(t);
                            break;
                        }
                    }
                    found
                } else {
                    let at = self.t.query(&pk, at_or_before(name, number)).await?;
                    at.first().map(decode::<TagRow>).transpose()?
                };
                if let Some(t) = row {
                    if t.membership().in_version(number) {
                        if let Ok(tag) = Tag::parse(name) {
                            out.push((tag, t.manifest));
                        }
                    }
                }
                cursor = Some(format!("{name}#\u{7f}"));
                if !whole {
                    break;
                }
                i = j;
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Brings a repository made by an older Berth up to date under the writer's lease: fills
    /// its tag index and counts its versions, then marks both on the repository. Costs one walk
    /// of its tag rows and of its versions, once.
    pub(super) async fn upgrade(&self, w: &mut VersionWriter) -> Result<(), WriteError> {
        if w.repo.tag_index && w.repo.versions.is_some() {
            return Ok(());
        }
        let mut after = w.repo.clone();
        if !w.repo.tag_index {
            self.index_tags(&w.repo).await?;
            after.tag_index = true;
        }
        if w.repo.versions.is_none() {
            let numbers: Vec<u64> = self.versions(&w.repo).await?.iter().map(|v| v.number).collect();
            let first = numbers.iter().copied().min().unwrap_or(w.repo.latest_version);
            let have: std::collections::BTreeSet<u64> = numbers.into_iter().collect();
            after.versions = Some(super::VersionSpan {
                first,
                deleted: (first..=w.repo.latest_version).filter(|n| !have.contains(n)).collect(),
            });
        }
        w.save(after).await
    }

    /// Writes the tag index rows of every tag row of a repository.
    async fn index_tags(&self, repo: &Repository) -> Result<(), StoreError> {
        let (members, index) = (format!("members#{}", repo.id), format!("tags#{}", repo.id));
        let mut cursor = None;
        loop {
            let rows = self
                .t
                .query(&members, Query::prefix("t#").after(cursor.clone()).limit(PAGE))
                .await?;
            for row in &rows {
                if let Some(ContentKey::Tag { name, manifest }) = key_of_member(&row.sk) {
                    let m: Membership = decode(row)?;
                    let t = TagRow {
                        manifest,
                        added: m.added,
                        removed: m.removed,
                    };
                    self.t
                        .put(&index, &index_sk(name.as_str(), m.added), encode(&t)?, Cond::Any)
                        .await?;
                }
            }
            if rows.len() < PAGE {
                return Ok(());
            }
            cursor = rows.last().map(|r| r.sk.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::lists::tests::counting;
    use crate::store::RepositoryKind;

    fn latest(i: u32) -> ContentKey {
        ContentKey::Tag {
            name: Tag::parse("latest").unwrap(),
            manifest: Digest::sha256_of(&i.to_le_bytes()),
        }
    }

    /// Reads a pull by tag takes after `moves` moves of the tag, at the latest version and at
    /// version 1.
    async fn pull_reads_after(moves: u32) -> (usize, usize) {
        let table = counting();
        let store = Store::new(table.clone());
        let repo = Repository::new("r", RepositoryKind::Push);
        store.create_repository(&repo).await.unwrap();
        let ttl = Duration::from_secs(60);
        for i in 0..moves {
            let mut w = store.begin_write(repo.id, "w", ttl, Duration::ZERO).await.unwrap();
            if i > 0 {
                w.remove(latest(i - 1)).await.unwrap();
            }
            w.add(latest(i)).await.unwrap();
            w.commit(None).await.unwrap().unwrap();
        }
        let repo = store.repository(repo.id).await.unwrap().unwrap();
        let tag = Tag::parse("latest").unwrap();
        let before = table.reads();
        let at = store.tag(&repo, repo.latest_version, &tag).await.unwrap();
        assert_eq!(at, Some(Digest::sha256_of(&(moves - 1).to_le_bytes())));
        let mid = table.reads();
        assert_eq!(
            store.tag(&repo, 1, &tag).await.unwrap(),
            Some(Digest::sha256_of(&0u32.to_le_bytes()))
        );
        let end = table.reads();
        (mid - before, end - mid)
    }

    /// A pull by tag reads one row after 1 move of the tag and after 10,000.
    #[tokio::test]
    async fn a_pull_by_tag_costs_one_read_after_ten_thousand_moves() {
        assert_eq!(pull_reads_after(1).await, (1, 1));
        assert_eq!(pull_reads_after(10_000).await, (1, 1));
    }
}

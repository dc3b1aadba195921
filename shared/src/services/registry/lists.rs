//! Lists: a repository's tags and the catalog of base paths (paged with `n` and `last`), and
//! the referrers of a manifest in the served version.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

use super::{CatalogPage, Referrer, Registry, Result, TagsPage};
use crate::domain::media::MediaType;
use crate::domain::{ContentKey, Digest, RepoName, Tag};

impl Registry {
    /// The tags of the served version in order after `last`, at most `n`.
    pub async fn tags(&self, name: &RepoName, n: Option<usize>, last: Option<&Tag>) -> Result<TagsPage> {
        let t = self.target(name).await?;
        let limit = n.unwrap_or(usize::MAX - 1);
        let mut tags = self
            .store
            .tags(&t.repo, t.version, last.map(Tag::as_str), limit.saturating_add(1))
            .await?;
        let more = tags.len() > limit;
        tags.truncate(limit);
        Ok(TagsPage {
            name: name.clone(),
            tags,
            more,
        })
    }

    /// Base paths in order after `last`, at most `n`, of the distributions `visible` admits
    /// (it gets the distribution's `private` flag).
    pub async fn catalog(
        &self,
        n: Option<usize>,
        last: Option<&RepoName>,
        visible: impl Fn(&crate::store::Distribution) -> bool,
    ) -> Result<CatalogPage> {
        let limit = n.unwrap_or(10_000);
        let mut out = Vec::new();
        let mut cursor = last.map(RepoName::to_string);
        loop {
            let page = self.store.distributions(cursor.as_deref(), 500).await?;
            let full = page.len() == 500;
            cursor = page.last().map(|d| d.base_path.to_string());
            for d in page {
                if visible(&d) {
                    if out.len() == limit {
                        return Ok(CatalogPage {
                            repositories: out,
                            more: true,
                        });
                    }
                    out.push(d.base_path);
                }
            }
            if !full {
                return Ok(CatalogPage {
                    repositories: out,
                    more: false,
                });
            }
        }
    }

    /// Manifests in the served version whose subject is `subject`, optionally of one
    /// artifact type.
    pub async fn referrers(
        &self,
        name: &RepoName,
        subject: &Digest,
        artifact_type: Option<&MediaType>,
    ) -> Result<Vec<Referrer>> {
        let t = self.target(name).await?;
        let mut out = Vec::new();
        for r in self.store.referrers(subject).await? {
            if artifact_type.is_some_and(|a| r.artifact_type.as_deref() != Some(a.as_str())) {
                continue;
            }
            if self
                .store
                .contains(t.repo.id, t.version, &ContentKey::Manifest(r.digest.clone()))
                .await?
            {
                out.push(Referrer {
                    digest: r.digest,
                    media_type: r.media_type,
                    size: r.size,
                    artifact_type: r.artifact_type,
                    annotations: r.annotations,
                });
            }
        }
        Ok(out)
    }
}

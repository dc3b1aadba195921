//! Pull-through caching: a pull of `<base path>/<upstream path>` under a pull-through
//! distribution fetches what the cache lacks from the registry its pull-through remote names.
//!
//! - The first pull of a path makes, named after the path, a container remote (the
//!   pull-through remote's settings with `upstream_name` = the path), a mirror repository
//!   keeping one version (as Pulp does) and a distribution serving it, private when the
//!   pull-through distribution is. Later pulls use them like any other distribution.
//! - A manifest fetched upstream is stored and committed to the repository with its tag; its
//!   blobs are recorded as on-demand blobs of the repository's remote, fetched on first pull
//!   and stored on the way ([`super::on_demand`]). An index's child manifests are fetched when
//!   a client asks for them, so a client pulling one platform fetches only that platform.
//! - A tag pull within `pull_through_ttl` of the tag's last check makes no upstream request;
//!   after it, one HEAD, and a GET only when the digest moved. A digest pull of cached content
//!   never asks upstream. When the upstream fails or rate-limits, what the cache holds is
//!   served and the failure logged.
//! - Concurrent misses of one manifest make one upstream request: the others wait for it and
//!   read what it stored ([`super::flights`]).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use uuid::Uuid;

use super::{Registry, RegistryError, Result, Target};
use crate::domain::filter::NameFilter;
use crate::domain::{parse_manifest, ContentKey, Digest, DomainError, Reference, RepoName, Tag};
use crate::ports::{StoreError, Upstream, UpstreamError};
use crate::services::content::save_manifest;
use crate::services::Versions;
use crate::store::{Distribution, LazyBlob, Remote, RemoteKind, Repository, RepositoryKind, TagCheck};

/// The versions a repository made by a pull through a cache keeps, as in Pulp.
pub const CACHE_VERSIONS_KEPT: u64 = 1;

/// Where a cached path comes from: its pull-through distribution and remote, and the name
/// upstream.
struct Source {
    parent: Distribution,
    remote: Remote,
    upstream_name: RepoName,
}

impl Registry {
    /// The digest `reference` names in `name`, a path under a pull-through distribution (or
    /// a distribution a pull through it made), fetched when the cache lacks it. `None` when
    /// `name` is no such path.
    pub(super) async fn through_cache(
        &self,
        name: &RepoName,
        served: Option<(Target, Distribution)>,
        reference: &Reference,
    ) -> Result<Option<Digest>> {
        match &served {
            Some((_, d)) if d.cached_by.is_none() => return Ok(None),
            Some((t, _)) => {
                if let Some(d) = self.cached(t, reference).await? {
                    return Ok(Some(d));
                }
            }
            None => {
                if self.store.pull_through_of(name).await?.is_none() {
                    return Ok(None);
                }
            }
        }
        let _turn = self.flights.enter(format!("manifest {name} {reference}")).await;
        // whoever held the turn may have fetched it
        let served = self.target_and_distribution(name).await?;
        if let Some((t, _)) = &served {
            if let Some(d) = self.cached(t, reference).await? {
                return Ok(Some(d));
            }
        }
        let Some(source) = self.source(name, served.as_ref().map(|(_, d)| d)).await? else {
            return Ok(None);
        };
        let remote = match &served {
            Some((_, d)) => self.child_remote(&source, d).await?,
            None => cache_remote(&source, name),
        };
        let up = self.upstream_of(&remote)?;
        let local = match (&served, reference) {
            (Some((t, _)), Reference::Tag(tag)) => self.store.tag(&t.repo, t.version, tag).await?,
            _ => None,
        };
        if let (Some((t, _)), Reference::Tag(tag), Some(have)) = (&served, reference, &local) {
            // a cached tag: one HEAD tells whether it moved
            let keep = match up.head_manifest(tag.as_str()).await {
                Ok(h) => h.digest.as_ref() == Some(have),
                Err(e) => {
                    tracing::warn!(name = %name, %tag, error = %e, "the upstream failed; serving the cached tag");
                    true
                }
            };
            if keep {
                self.checked(t.repo.id, tag, have).await?;
                return Ok(Some(have.clone()));
            }
        }
        let fetched = match up.get_manifest(&reference.to_string()).await {
            Ok(m) => m,
            Err(e) => {
                if let (Some((t, _)), Reference::Tag(tag), Some(have)) = (&served, reference, &local) {
                    tracing::warn!(name = %name, %tag, error = %e, "the upstream failed; serving the cached tag");
                    self.checked(t.repo.id, tag, have).await?;
                    return Ok(Some(have.clone()));
                }
                return Err(upstream_failure(e, || {
                    RegistryError::ManifestUnknown(format!("{reference} is not in {}", up.location()))
                }));
            }
        };
        let digest = match reference {
            Reference::Digest(d) => {
                let actual = d.recompute(&fetched.bytes);
                if &actual != d {
                    return Err(RegistryError::UpstreamFailed(format!(
                        "{} sent a manifest hashing to {actual} for {d}",
                        up.location()
                    )));
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&fetched.bytes),
        };
        let t = match served {
            Some((t, _)) => t,
            None => self.make_cache(&source, name, remote).await?,
        };
        let tag = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        self.keep_manifest(&t, &digest, fetched.bytes, fetched.media_type.as_deref(), tag)
            .await?;
        Ok(Some(digest))
    }

    /// The digest the cache serves for `reference` without asking upstream: a digest it
    /// holds, or a tag checked within the TTL.
    async fn cached(&self, t: &Target, reference: &Reference) -> Result<Option<Digest>> {
        match reference {
            Reference::Digest(d) => Ok(self
                .store
                .contains(t.repo.id, t.version, &ContentKey::Manifest(d.clone()))
                .await?
                .then(|| d.clone())),
            Reference::Tag(tag) => {
                let Some(have) = self.store.tag(&t.repo, t.version, tag).await? else {
                    return Ok(None);
                };
                let fresh = self.store.tag_check(t.repo.id, tag).await?.is_some_and(|c| {
                    c.digest == have
                        && Utc::now().signed_duration_since(c.at).to_std().unwrap_or_default()
                            < self.cfg.pull_through_ttl
                });
                Ok(fresh.then_some(have))
            }
        }
    }

    async fn checked(&self, repo: Uuid, tag: &Tag, digest: &Digest) -> Result<()> {
        let check = TagCheck {
            digest: digest.clone(),
            at: Utc::now(),
        };
        Ok(self.store.set_tag_check(repo, tag, &check).await?)
    }

    /// The pull-through distribution and remote `name` falls under, and the upstream name;
    /// `NameUnknown` when the remote's filters leave the name out. `None` when `name` is no
    /// cached path.
    async fn source(&self, name: &RepoName, served: Option<&Distribution>) -> Result<Option<Source>> {
        let found = match served.and_then(|d| d.cached_by) {
            Some(parent) => match self.store.distribution(parent).await? {
                Some(p) => {
                    let rest = name
                        .as_str()
                        .strip_prefix(p.base_path.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                        .map(str::to_owned);
                    rest.map(|r| (p, r))
                }
                None => None,
            },
            None => self.store.pull_through_of(name).await?,
        };
        let Some((parent, rest)) = found else {
            return Ok(None);
        };
        let unknown = || RegistryError::NameUnknown(name.to_string());
        let remote = match parent.remote {
            Some(id) => self.store.remote(id).await?,
            None => None,
        };
        let Some(remote) = remote.filter(|r| r.kind == RemoteKind::PullThrough) else {
            tracing::warn!(distribution = %parent.name, "the pull-through distribution has no pull-through remote");
            return Err(unknown());
        };
        let filter = NameFilter::new(
            remote.includes.as_deref().unwrap_or(&[]),
            remote.excludes.as_deref().unwrap_or(&[]),
        )
        .map_err(|e| RegistryError::Internal(Box::new(e)))?;
        let upstream = upstream_path(&remote.url, &rest);
        if !filter.selects(&rest) && !filter.selects(&upstream) {
            return Err(unknown());
        }
        let upstream_name = RepoName::parse(&upstream).map_err(|_| unknown())?;
        Ok(Some(Source {
            parent,
            remote,
            upstream_name,
        }))
    }

    /// The container remote of a cached path, brought up to date with its pull-through
    /// remote's connection settings.
    async fn child_remote(&self, source: &Source, dist: &Distribution) -> Result<Remote> {
        let want = cache_remote(source, &dist.base_path);
        let Some(id) = dist.remote else {
            return Ok(want);
        };
        let Some(have) = self.store.remote(id).await? else {
            return Ok(want);
        };
        let mut probe = want.clone();
        probe.id = have.id;
        probe.name = have.name.clone();
        probe.pulp_labels = have.pulp_labels.clone();
        probe.created = have.created;
        probe.updated = have.updated;
        if probe == have {
            return Ok(have);
        }
        let updated = self
            .store
            .update_remote(id, |r: &mut Remote| -> std::result::Result<(), StoreError> {
                let (rid, name, labels, created) = (r.id, r.name.clone(), r.pulp_labels.clone(), r.created);
                *r = want.clone();
                (r.id, r.name, r.pulp_labels, r.created) = (rid, name, labels, created);
                r.updated = Utc::now();
                Ok(())
            })
            .await?;
        Ok(updated)
    }

    pub(super) fn upstream_of(&self, remote: &Remote) -> Result<Arc<dyn Upstream>> {
        let Some(factory) = &self.upstreams else {
            return Err(RegistryError::UpstreamFailed(
                "this server cannot reach upstream registries".into(),
            ));
        };
        factory
            .client(&remote.upstream_config())
            .map_err(|e| RegistryError::UpstreamFailed(e.to_string()))
    }

    /// Makes the remote, repository and distribution of a newly cached path (racing pulls
    /// of the same path find the winner's).
    async fn make_cache(&self, source: &Source, name: &RepoName, remote: Remote) -> Result<Target> {
        let taken = |what: &str| {
            tracing::warn!(path = %name, "a {what} of that name exists and is not this cache's");
            RegistryError::NameUnknown(name.to_string())
        };
        for _ in 0..6 {
            if let Some((t, _)) = self.target_and_distribution(name).await? {
                return Ok(t);
            }
            let remote = match self.store.remote_by_name(name.as_str()).await? {
                Some(r) if r.kind == RemoteKind::Container && r.url == remote.url => r,
                Some(_) => return Err(taken("remote")),
                None => match self.store.create_remote(&remote).await {
                    Ok(()) => remote.clone(),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e.into()),
                },
            };
            let repo = match self.store.repository_by_name(name.as_str()).await? {
                Some(r) if r.kind == RepositoryKind::Mirror && r.remote == Some(remote.id) => r,
                Some(_) => return Err(taken("repository")),
                None => {
                    let mut r = Repository::new(name.as_str(), RepositoryKind::Mirror);
                    r.retain_repo_versions = Some(CACHE_VERSIONS_KEPT);
                    r.remote = Some(remote.id);
                    match self.store.create_repository(&r).await {
                        Ok(()) => r,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            let mut dist = Distribution::new(name.as_str(), name.clone(), Some(repo.id));
            dist.remote = Some(remote.id);
            dist.cached_by = Some(source.parent.id);
            dist.private = source.parent.private;
            match self.store.create_distribution(&dist).await {
                Ok(()) => {
                    tracing::info!(path = %name, upstream = %source.upstream_name, "caching a new path");
                    let version = repo.latest_version;
                    return Ok(Target { repo, version });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Busy)
    }

    /// Stores a manifest fetched upstream and commits it (with its blobs, as on-demand
    /// blobs, and its tag) to the cache's repository.
    async fn keep_manifest(
        &self,
        t: &Target,
        digest: &Digest,
        bytes: Bytes,
        media_type: Option<&str>,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let parsed = parse_manifest(&bytes, media_type).map_err(|e| match e {
            DomainError::Schema1 => RegistryError::ManifestUnknown(
                "the upstream has only a schema 1 manifest, which Berth does not serve".into(),
            ),
            other => RegistryError::UpstreamFailed(format!("the upstream sent an invalid manifest: {other}")),
        })?;
        let remote = t
            .repo
            .remote
            .ok_or_else(|| RegistryError::NameUnknown(t.repo.name.clone()))?;
        let blobs: Vec<(Digest, u64)> = parsed
            .config
            .iter()
            .chain(parsed.layers.iter())
            .map(|d| (d.digest.clone(), d.size))
            .collect();
        save_manifest(&self.store, &self.blobs, digest, &bytes, parsed).await?;
        for (d, size) in &blobs {
            if self.blobs.stat(d).await?.is_none() {
                self.store
                    .put_lazy_blob(t.repo.id, d, &LazyBlob { remote, size: *size })
                    .await?;
            }
        }
        let owner = Uuid::new_v4().to_string();
        let mut w = self
            .store
            .begin_write(t.repo.id, &owner, self.cfg.lease_ttl, self.cfg.lease_wait)
            .await?;
        w.add(ContentKey::Manifest(digest.clone())).await?;
        for (d, _) in &blobs {
            w.add(ContentKey::Blob(d.clone())).await?;
        }
        if let Some(tag) = tag {
            self.point_tag(&mut w, tag, digest).await?;
        }
        if let Some(v) = Versions::new(&self.store).commit(w, None).await? {
            tracing::info!(repository = %t.repo.name, version = v.number, %digest, "cached a manifest");
        }
        if let Some(tag) = tag {
            self.checked(t.repo.id, tag, digest).await?;
        }
        Ok(())
    }
}

/// Where a pull of `name` that names no Berth path goes: `<base path>/<name>` of the
/// pull-through distribution `ns` (containerd's mirror parameter) maps to, else of the default
/// one when no distribution serves `name` and no pull-through distribution covers it. `None`:
/// `name` as it is.
pub async fn mirror_route(
    store: &crate::store::Store,
    routes: &crate::domain::MirrorRoutes,
    name: &RepoName,
    ns: Option<&str>,
) -> std::result::Result<Option<RepoName>, StoreError> {
    let under = |base: &RepoName| {
        name.as_str()
            .strip_prefix(base.as_str())
            .is_some_and(|r| r.starts_with('/'))
    };
    let join = |base: &RepoName| RepoName::parse(&format!("{base}/{name}")).ok();
    if let Some(base) = ns.and_then(|n| routes.for_ns(n)) {
        return Ok(if under(base) { None } else { join(base) });
    }
    let Some(base) = &routes.default else {
        return Ok(None);
    };
    if under(base)
        || store.distribution_by_base_path(name).await?.is_some()
        || store.pull_through_of(name).await?.is_some()
    {
        return Ok(None);
    }
    Ok(join(base))
}

impl Registry {
    /// Where a pull of `name` (with containerd's `ns`, if any) is served: see [`mirror_route`].
    pub async fn mirror_route(&self, name: &RepoName, ns: Option<&str>) -> Result<Option<RepoName>> {
        Ok(mirror_route(&self.store, &self.cfg.mirrors, name, ns).await?)
    }
}

/// The container remote a cached path fetches with: the pull-through remote's settings,
/// named after the path, for the upstream name.
fn cache_remote(source: &Source, name: &RepoName) -> Remote {
    let mut r = source.remote.clone();
    r.id = Uuid::new_v4();
    r.name = name.to_string();
    r.kind = RemoteKind::Container;
    r.upstream_name = source.upstream_name.clone();
    r.includes = None;
    r.excludes = None;
    r.created = Utc::now();
    r.updated = r.created;
    r
}

/// The name upstream of cached path `rest`: Docker Hub keeps one-word official images under
/// `library/`.
pub fn upstream_path(url: &str, rest: &str) -> String {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let hub = matches!(
        host.as_str(),
        "docker.io" | "registry-1.docker.io" | "index.docker.io" | "registry.hub.docker.com"
    );
    if hub && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest.to_owned()
    }
}

/// What a failed upstream request means to the client: `missing` for a 404.
fn upstream_failure(e: UpstreamError, missing: impl FnOnce() -> RegistryError) -> RegistryError {
    match e {
        UpstreamError::NotFound { .. } => missing(),
        e @ UpstreamError::TooManyRequests { .. } => RegistryError::UpstreamThrottled(e.to_string()),
        e => {
            tracing::warn!(error = %e, "a pull through the cache failed upstream");
            RegistryError::UpstreamFailed(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::upstream_path;

    #[test]
    fn docker_hub_one_word_names_are_official_images() {
        assert_eq!(
            upstream_path("https://registry-1.docker.io", "busybox"),
            "library/busybox"
        );
        assert_eq!(upstream_path("https://registry-1.docker.io", "org/app"), "org/app");
        assert_eq!(upstream_path("https://index.docker.io/", "alpine"), "library/alpine");
        assert_eq!(upstream_path("http://127.0.0.1:5000", "busybox"), "busybox");
        assert_eq!(upstream_path("https://quay.io", "busybox"), "busybox");
    }
}

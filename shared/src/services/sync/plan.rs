//! Sync steps 2 to 4: the references to sync, their manifests (fetched, verified and stored,
//! or reused), cosign companions, referrers and atomic signatures, and the `signed_only`
//! selection. The result is a [`Plan`], which a run that reaches its deadline keeps as the
//! task's checkpoint.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; part of
//! the sync service.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{failed, Result, Run, SyncError};
use crate::domain::filter::TagFilter;
use crate::domain::media::{essence, is_schema1};
use crate::domain::{parse_manifest, ContentKey, Digest, DomainError, ParsedManifest, Tag};
use crate::ports::UpstreamError;
use crate::services::content::save_manifest;
use crate::store::{ProgressReport, SignatureRecord, SignatureType, VersionWriter};

pub(super) const TAG_LIST: (&str, &str) = ("Downloading tag list", "sync.downloading.tag_list");
pub(super) const MANIFESTS: (&str, &str) = ("Processing Manifests", "sync.processing.manifest");
pub(super) const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// What a reference is synced for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Role {
    /// Selected by the filters.
    Selected,
    /// A cosign companion tag of the manifest with this hex digest.
    Companion(String),
    /// A referrer of this manifest.
    Referrer(Digest),
}

#[derive(Debug, Clone)]
pub(super) enum Ref {
    Tag(Tag),
    Digest(Digest),
}

impl Ref {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Ref::Tag(t) => t.as_str(),
            Ref::Digest(d) => d.as_str(),
        }
    }
}

/// A synced reference: its tag (if any), its top manifest and every manifest it brings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Image {
    pub(super) tag: Option<Tag>,
    pub(super) top: Digest,
    pub(super) manifests: Vec<Digest>,
    pub(super) role: Role,
}

/// What a sync brings, once the references are resolved (every manifest in it is stored):
/// the rest of the run downloads blobs and writes the version. A run that reaches its
/// deadline after planning keeps its plan as the task's checkpoint, and the follow-up starts
/// from it instead of listing tags and checking manifests again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Plan {
    pub(super) images: Vec<Image>,
    pub(super) signatures: Vec<(Digest, Vec<SignatureRecord>)>,
    pub(super) reports: Vec<ProgressReport>,
}

pub(super) enum Outcome {
    Image(Image),
    Schema1(String),
    Missing(String),
}

/// The cosign companion tag's subject hex and suffix: `sha256-<hex>.sig` → (`<hex>`, `.sig`).
pub(super) fn cosign_subject(tag: &str) -> Option<(&str, &str)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = match rest.find('.') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (ok && (suffix.is_empty() || COSIGN_SUFFIXES.contains(&suffix))).then_some((hex, suffix))
}
/// The references a run resolves first: the literal includes, or the listed tags the filter
/// selects; plus the filter's digests. With the listed tags when the tag list was read.
type References = (Vec<Ref>, Option<Vec<String>>);

impl Run<'_> {
    /// Steps 2 to 4 of a sync, in order: references, manifests, companions and referrers,
    /// atomic signatures, then the `signed_only` selection.
    pub(super) async fn make_plan(
        &self,
        w: &mut VersionWriter,
        sigstore: Option<String>,
        extension: bool,
    ) -> Result<Plan> {
        let remote = &self.remote;
        let filter = TagFilter::new(
            remote.includes.as_deref().unwrap_or_default(),
            remote.excludes.as_deref().unwrap_or_default(),
        )
        .map_err(|e| failed(format!("remote {}'s include/exclude tags", remote.name), e))?;
        let (refs, listed) = self.references(w, &filter).await?;
        self.start(MANIFESTS, Some(refs.len() as u64));
        let mut images = self.selected(w, refs, listed.is_none()).await?;
        let companions = self.companions(w, &filter, listed.as_deref(), &images).await?;
        images.extend(companions);
        let mut signatures = if sigstore.is_some() || extension {
            self.atomic_signatures(w, &images, sigstore).await?
        } else {
            BTreeMap::new()
        };
        if self.job.signed_only {
            images = self.keep_signed(images, &mut signatures, listed.as_deref());
        }
        self.complete(MANIFESTS);
        Ok(Plan {
            images,
            signatures: signatures.into_iter().collect(),
            reports: Vec::new(),
        })
    }

    /// Step 1: the references to resolve.
    async fn references(&self, w: &mut VersionWriter, filter: &TagFilter) -> Result<References> {
        let digests = filter.digests.iter().cloned().map(Ref::Digest);
        if let Some(tags) = filter.literal_includes() {
            self.report(TAG_LIST, |r| {
                r.state = "skipped".into();
                r.total = Some(0);
            });
            let mut refs = Vec::new();
            for t in tags {
                let tag =
                    Tag::parse(&t).map_err(|e| failed(format!("remote {}'s include_tags", self.remote.name), e))?;
                refs.push(Ref::Tag(tag));
            }
            refs.extend(digests);
            return Ok((refs, None));
        }
        let tags = self.list_tags(w).await?;
        let refs = tags
            .iter()
            .filter(|t| filter.is_empty() || (filter.selects(t) && !t.starts_with("sha256-")))
            .filter_map(|t| match Tag::parse(t) {
                Ok(tag) => Some(Ref::Tag(tag)),
                Err(_) => {
                    self.warn("sync.skipped.invalid_tag", "Skipped invalid tag names", t);
                    None
                }
            })
            .chain(digests)
            .collect();
        Ok((refs, Some(tags)))
    }

    /// Step 2: the selected references' images; with `literal` includes, a sync that finds none of
    /// them fails.
    async fn selected(&self, w: &mut VersionWriter, refs: Vec<Ref>, literal: bool) -> Result<Vec<Image>> {
        let refs = refs.into_iter().map(|r| (r, Role::Selected)).collect();
        let selected = self.resolve_all(w, refs, true).await?;
        let main_found = selected.iter().any(|o| matches!(o, Outcome::Image(_)));
        if literal && !main_found && !selected.is_empty() && selected.iter().all(|o| matches!(o, Outcome::Missing(_))) {
            return Err(SyncError::Failed(format!(
                "none of the included tags and digests exists at {}",
                self.up.location()
            )));
        }
        let mut images = Vec::new();
        for o in selected {
            match o {
                Outcome::Image(i) => images.push(i),
                Outcome::Schema1(r) => {
                    self.warn("sync.skipped.schema1", "Skipped schema 1 manifests (not supported)", &r)
                }
                Outcome::Missing(r) => self.warn("sync.skipped.missing", "Not found upstream", &r),
            }
        }
        Ok(images)
    }

    /// Step 3: cosign companions (`sha256-<hex>.sig|.att|.sbom` tags) and referrers of what was
    /// selected. Companions of companions are not followed; referrers of every selected
    /// manifest are.
    async fn companions(
        &self,
        w: &mut VersionWriter,
        filter: &TagFilter,
        listed: Option<&[String]>,
        images: &[Image],
    ) -> Result<Vec<Image>> {
        let synced: BTreeSet<Digest> = images.iter().flat_map(|i| i.manifests.iter().cloned()).collect();
        let have_tags: HashSet<String> = images
            .iter()
            .filter_map(|i| i.tag.as_ref().map(|t| t.to_string()))
            .collect();
        let mut companions: Vec<(Ref, String)> = Vec::new();
        match listed {
            Some(tags) if !filter.is_empty() => {
                let hexes: HashSet<&str> = synced.iter().map(Digest::hex).collect();
                for t in tags.iter().filter(|t| !have_tags.contains(*t)) {
                    if let Some((hex, _)) = cosign_subject(t).filter(|(hex, _)| hexes.contains(hex)) {
                        if let Ok(tag) = Tag::parse(t) {
                            companions.push((Ref::Tag(tag), hex.to_owned()));
                        }
                    }
                }
            }
            Some(_) => {} // no filters: every tag, companions included, is selected already
            None => {
                for d in &synced {
                    for suffix in COSIGN_SUFFIXES {
                        let t = format!("sha256-{}{suffix}", d.hex());
                        if have_tags.contains(&t) {
                            continue;
                        }
                        if let Ok(tag) = Tag::parse(&t) {
                            companions.push((Ref::Tag(tag), d.hex().to_owned()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        if !companions.is_empty() {
            self.report(MANIFESTS, |r| {
                r.total = Some(r.total.unwrap_or(0) + companions.len() as u64)
            });
            let refs = companions
                .into_iter()
                .map(|(r, hex)| (r, Role::Companion(hex)))
                .collect();
            for o in self.resolve_all(w, refs, false).await? {
                if let Outcome::Image(i) = o {
                    found.push(i);
                }
            }
        }
        let subjects: Vec<Digest> = synced.into_iter().collect();
        found.extend(self.referrers(w, &subjects).await?);
        Ok(found)
    }

    /// Step 4: the atomic signatures of the selected images' manifests, from the sigstore and the
    /// registry's signature extension.
    async fn atomic_signatures(
        &self,
        w: &mut VersionWriter,
        images: &[Image],
        sigstore: Option<String>,
    ) -> Result<BTreeMap<Digest, Vec<SignatureRecord>>> {
        let targets: BTreeSet<Digest> = images
            .iter()
            .filter(|i| i.role == Role::Selected)
            .flat_map(|i| i.manifests.iter().cloned())
            .collect();
        let this = self;
        let stream = futures::stream::iter(targets)
            .map(move |d| {
                let sigstore = sigstore.clone();
                async move {
                    let found = this.signatures(&d, sigstore.as_deref()).await?;
                    Ok((d, found))
                }
            })
            .buffer_unordered(self.concurrency);
        let mut signatures = BTreeMap::new();
        self.drive(w, stream, |(d, sigs): (Digest, Vec<SignatureRecord>)| {
            if !sigs.is_empty() {
                signatures.insert(d, sigs);
            }
            Ok(())
        })
        .await?;
        Ok(signatures)
    }

    /// Step 5, `signed_only`: the images signed (atomic signatures or a cosign `.sig`), then the
    /// companions and referrers whose subject is kept; the signatures of what is kept.
    fn keep_signed(
        &self,
        images: Vec<Image>,
        signatures: &mut BTreeMap<Digest, Vec<SignatureRecord>>,
        listed: Option<&[String]>,
    ) -> Vec<Image> {
        let sig_subject = |t: &str| {
            cosign_subject(t)
                .filter(|(_, suffix)| *suffix == ".sig" || suffix.is_empty())
                .map(|(hex, _)| hex.to_owned())
        };
        let cosign_signed: HashSet<String> = images
            .iter()
            .filter_map(|i| i.tag.as_ref())
            .filter_map(|t| sig_subject(t.as_str()))
            .chain(listed.into_iter().flatten().filter_map(|t| sig_subject(t)))
            .collect();
        let signed = |d: &Digest| signatures.contains_key(d) || cosign_signed.contains(d.hex());
        let companion_of = |i: &Image| match &i.role {
            Role::Companion(hex) => Some(hex.clone()),
            Role::Referrer(d) => Some(d.hex().to_owned()),
            Role::Selected => i
                .tag
                .as_ref()
                .and_then(|t| cosign_subject(t.as_str()))
                .map(|(hex, _)| hex.to_owned()),
        };
        let mut kept_hex: HashSet<String> = HashSet::new();
        let mut kept: Vec<Image> = Vec::new();
        let mut rest: Vec<(String, Image)> = Vec::new();
        for i in images {
            if let Some(subject) = companion_of(&i) {
                rest.push((subject, i));
                continue;
            }
            let children = &i.manifests[1..];
            if signed(&i.top) || (!children.is_empty() && children.iter().all(signed)) {
                kept_hex.extend(i.manifests.iter().map(|d| d.hex().to_owned()));
                kept.push(i);
            } else {
                let name = i.tag.as_ref().map_or_else(|| i.top.to_string(), |t| t.to_string());
                self.warn("sync.skipped.unsigned", "Skipped unsigned images (signed_only)", &name);
            }
        }
        kept.extend(
            rest.into_iter()
                .filter(|(subject, _)| kept_hex.contains(subject))
                .map(|(_, i)| i),
        );
        signatures.retain(|d, _| kept_hex.contains(d.hex()));
        kept
    }

    pub(super) async fn list_tags(&self, w: &mut VersionWriter) -> Result<Vec<String>> {
        self.start(TAG_LIST, None);
        let mut tags: Vec<String> = Vec::new();
        let mut next: Option<String> = None;
        let mut seen_pages: HashSet<String> = HashSet::new();
        loop {
            let page = self
                .up
                .tags_page(next.as_deref())
                .await
                .map_err(|e| failed("downloading the tag list", e))?;
            tags.extend(page.tags);
            self.advance(TAG_LIST, 1);
            match page.next {
                Some(n) if seen_pages.insert(n.clone()) => next = Some(n),
                _ => break,
            }
            self.housekeeping(w).await?;
        }
        self.report(TAG_LIST, |r| {
            r.total = Some(r.done);
            r.state = "completed".into();
        });
        let mut seen = HashSet::new();
        tags.retain(|t| seen.insert(t.clone()));
        Ok(tags)
    }

    /// Resolves references concurrently. With `count`, each advances the manifest progress;
    /// otherwise (probes that may find nothing) only those found do.
    pub(super) async fn resolve_all(
        &self,
        w: &mut VersionWriter,
        refs: Vec<(Ref, Role)>,
        count: bool,
    ) -> Result<Vec<Outcome>> {
        let this = self;
        let stream = futures::stream::iter(refs)
            .map(move |(r, role)| async move { this.resolve(r, role).await })
            .buffer_unordered(self.concurrency);
        let mut out = Vec::new();
        self.drive(w, stream, |o| {
            if count || matches!(o, Outcome::Image(_)) {
                self.advance(MANIFESTS, 1);
            }
            out.push(o);
            Ok(())
        })
        .await?;
        if !count {
            // companions that were not there do not count as processed manifests
            self.report(MANIFESTS, |r| r.total = Some(r.done));
        }
        Ok(out)
    }

    /// HEAD, then reuse or GET, one reference and every manifest it lists.
    pub(super) async fn resolve(&self, r: Ref, role: Role) -> Result<Outcome> {
        let at = format!("manifest {} at {}", r.as_str(), self.up.location());
        let head = match self.up.head_manifest(r.as_str()).await {
            Ok(h) => Some(h),
            Err(e) if e.is_not_found() => return Ok(Outcome::Missing(r.as_str().to_owned())),
            // some registries answer HEAD badly; the GET decides
            Err(UpstreamError::Status {
                code: 400 | 405 | 501, ..
            }) => None,
            Err(e) => return Err(failed(format!("checking {at}"), e)),
        };
        if head
            .as_ref()
            .and_then(|h| h.media_type.as_deref())
            .is_some_and(is_schema1)
        {
            return Ok(Outcome::Schema1(r.as_str().to_owned()));
        }
        let known = match &r {
            Ref::Digest(d) => Some(d.clone()),
            Ref::Tag(_) => head.and_then(|h| h.digest),
        };
        let (top, parsed) = match known {
            Some(d) => match self.known_manifest(&d).await? {
                Some(p) => (d, p),
                None => match self.fetch_manifest(&r, Some(&d)).await? {
                    Some(x) => x,
                    None => return Ok(Outcome::Schema1(r.as_str().to_owned())),
                },
            },
            None => match self.fetch_manifest(&r, None).await? {
                Some(x) => x,
                None => return Ok(Outcome::Schema1(r.as_str().to_owned())),
            },
        };
        let mut manifests = vec![top.clone()];
        let mut stack: Vec<Digest> = parsed.manifests.iter().map(|c| c.digest.clone()).collect();
        let mut depth_guard = 0usize;
        while let Some(child) = stack.pop() {
            depth_guard += 1;
            if depth_guard > 10_000 {
                return Err(SyncError::Failed(format!("{at} lists too many manifests")));
            }
            if manifests.contains(&child) {
                continue;
            }
            let p = match self.known_manifest(&child).await? {
                Some(p) => p,
                None => match self.fetch_manifest(&Ref::Digest(child.clone()), Some(&child)).await? {
                    Some((_, p)) => p,
                    None => {
                        return Err(SyncError::Failed(format!(
                            "{at} lists {child}, a schema 1 manifest, which is not supported"
                        )))
                    }
                },
            };
            stack.extend(p.manifests.iter().map(|c| c.digest.clone()));
            manifests.push(child);
        }
        Ok(Outcome::Image(Image {
            tag: match r {
                Ref::Tag(t) => Some(t),
                Ref::Digest(_) => None,
            },
            top,
            manifests,
            role,
        }))
    }

    /// A manifest already stored (or seen in this run).
    pub(super) async fn known_manifest(&self, d: &Digest) -> Result<Option<ParsedManifest>> {
        if let Some(p) = self.manifests.lock().ok().and_then(|m| m.get(d).cloned()) {
            return Ok(Some(p));
        }
        match self.store().manifest(d).await? {
            Some(rec) => {
                self.reused(ContentKey::Manifest(d.clone())).await?;
                if let Ok(mut m) = self.manifests.lock() {
                    m.insert(d.clone(), rec.parsed.clone());
                }
                Ok(Some(rec.parsed))
            }
            None => Ok(None),
        }
    }

    /// GETs, verifies, parses and stores a manifest. `None` for schema 1.
    pub(super) async fn fetch_manifest(
        &self,
        r: &Ref,
        expected: Option<&Digest>,
    ) -> Result<Option<(Digest, ParsedManifest)>> {
        let at = format!("manifest {} at {}", r.as_str(), self.up.location());
        let m = self
            .up
            .get_manifest(r.as_str())
            .await
            .map_err(|e| failed(format!("downloading {at}"), e))?;
        if m.media_type.as_deref().is_some_and(is_schema1) {
            return Ok(None);
        }
        let digest = match (r, expected) {
            (Ref::Digest(d), _) => {
                let actual = d.recompute(&m.bytes);
                if &actual != d {
                    return Err(SyncError::Failed(format!(
                        "downloading {at}: the manifest hashes to {actual}, not {d}; nothing was stored"
                    )));
                }
                actual
            }
            (Ref::Tag(_), _) => {
                let alg_of = m.digest_header.as_ref().or(expected);
                let actual = match alg_of {
                    Some(h) => h.recompute(&m.bytes),
                    None => Digest::sha256_of(&m.bytes),
                };
                if let Some(h) = &m.digest_header {
                    if &actual != h {
                        return Err(SyncError::Failed(format!(
                            "downloading {at}: the manifest hashes to {actual}, but the registry says {h}; nothing was stored"
                        )));
                    }
                }
                actual
            }
        };
        let content_type = m.media_type.as_deref().map(essence);
        let parsed = match parse_manifest(&m.bytes, content_type.as_deref()) {
            Ok(p) => p,
            Err(DomainError::Schema1) => return Ok(None),
            Err(e) => return Err(failed(format!("{at} is invalid"), e)),
        };
        save_manifest(self.store(), &self.svc.blobs, &digest, &m.bytes, parsed.clone())
            .await
            .map_err(|e| self.store_failure(&format!("storing {at}"), e))?;
        if let Ok(mut seen) = self.manifests.lock() {
            seen.insert(digest.clone(), parsed.clone());
        }
        Ok(Some((digest, parsed)))
    }
    pub(super) async fn referrers(&self, w: &mut VersionWriter, subjects: &[Digest]) -> Result<Vec<Image>> {
        let Some((first, others)) = subjects.split_first() else {
            return Ok(Vec::new());
        };
        let list = |s: Digest| async move {
            match self.up.referrers(&s).await {
                Ok(Some(index)) => Ok(Some((s, index))),
                Ok(None) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(failed(format!("listing referrers of {s} at {}", self.up.location()), e)),
            }
        };
        let Some(head) = list(first.clone()).await? else {
            return Ok(Vec::new());
        };
        let mut indexes = vec![head];
        let stream = futures::stream::iter(others.to_vec())
            .map(list)
            .buffer_unordered(self.concurrency);
        self.drive(w, stream, |found| {
            indexes.extend(found);
            Ok(())
        })
        .await?;
        let mut seen: HashSet<Digest> = subjects.iter().cloned().collect();
        let mut refs = Vec::new();
        for (subject, index) in indexes {
            let v: serde_json::Value = serde_json::from_slice(&index).unwrap_or_default();
            for m in v["manifests"].as_array().into_iter().flatten() {
                if let Some(d) = m["digest"].as_str().and_then(|d| Digest::parse(d).ok()) {
                    if seen.insert(d.clone()) {
                        refs.push((Ref::Digest(d), Role::Referrer(subject.clone())));
                    }
                }
            }
        }
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        self.report(MANIFESTS, |r| r.total = Some(r.total.unwrap_or(0) + refs.len() as u64));
        Ok(self
            .resolve_all(w, refs, true)
            .await?
            .into_iter()
            .filter_map(|o| match o {
                Outcome::Image(i) => Some(i),
                _ => None,
            })
            .collect())
    }

    /// Atomic signatures of one manifest.
    pub(super) async fn signatures(&self, d: &Digest, sigstore: Option<&str>) -> Result<Vec<SignatureRecord>> {
        let mut raw: Vec<(Option<String>, Bytes)> = Vec::new();
        match sigstore {
            Some(s) => {
                for n in 1..=self.svc.settings.max_lookaside_signatures {
                    if self.canceled.load(Ordering::Relaxed) {
                        return Err(SyncError::Canceled);
                    }
                    match self.up.lookaside_signature(s, d, n).await {
                        Ok(Some(b)) => raw.push((None, b)),
                        Ok(None) => break,
                        Err(e) => return Err(failed(format!("downloading signature {n} of {d} from {s}"), e)),
                    }
                }
            }
            None => {
                let found = self
                    .up
                    .extension_signatures(d)
                    .await
                    .map_err(|e| failed(format!("downloading the signatures of {d}"), e))?;
                raw.extend(found.into_iter().map(|s| (s.name, s.content)));
            }
        }
        Ok(raw
            .into_iter()
            .map(|(name, bytes)| {
                let digest = Digest::sha256_of(&bytes);
                SignatureRecord {
                    name: name.unwrap_or_else(|| format!("{d}@{}", &digest.hex()[..32])),
                    digest,
                    signed: d.clone(),
                    kind: SignatureType::Atomic,
                    key_id: None,
                    data: base64::engine::general_purpose::STANDARD.encode(&bytes),
                    created: Utc::now(),
                }
            })
            .collect())
    }
}

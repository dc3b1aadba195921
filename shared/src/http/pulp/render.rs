//! Pulp's JSON for each resource: field names, href shapes, timestamps.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::domain::{ContentKey, ContentSummary, ContentType};
use crate::store::{
    content_id, Distribution, ManifestRecord, Namespace, Remote, RemoteHeaders, Repository, RepositoryKind,
    RepositoryVersion, ResourceRef, Schedule, ScheduledWork, Task, WorkerRecord,
};

pub const API: &str = "/pulp/api/v3/";

pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn kind_path(kind: RepositoryKind) -> &'static str {
    match kind {
        RepositoryKind::Mirror => "container",
        RepositoryKind::Push => "container-push",
    }
}

pub fn repo_href(id: Uuid, kind: RepositoryKind) -> String {
    format!("{API}repositories/container/{}/{id}/", kind_path(kind))
}

pub fn version_href(repo: Uuid, kind: RepositoryKind, n: u64) -> String {
    format!("{}versions/{n}/", repo_href(repo, kind))
}

pub fn remote_href(id: Uuid) -> String {
    format!("{API}remotes/container/container/{id}/")
}

pub fn dist_href(id: Uuid) -> String {
    format!("{API}distributions/container/container/{id}/")
}

pub fn pt_remote_href(id: Uuid) -> String {
    format!("{API}remotes/container/pull-through/{id}/")
}

pub fn pt_remote_prn(id: Uuid) -> String {
    format!("prn:container.containerpullthroughremote:{id}")
}

pub fn pt_dist_href(id: Uuid) -> String {
    format!("{API}distributions/container/pull-through/{id}/")
}

pub fn pt_dist_prn(id: Uuid) -> String {
    format!("prn:container.containerpullthroughdistribution:{id}")
}

pub fn task_href(id: Uuid) -> String {
    format!("{API}tasks/{id}/")
}

pub fn namespace_href(id: Uuid) -> String {
    format!("{API}pulp_container/namespaces/{id}/")
}

pub fn namespace_prn(id: Uuid) -> String {
    format!("prn:container.containernamespace:{id}")
}

pub fn worker_href(id: Uuid) -> String {
    format!("{API}workers/{id}/")
}

pub fn worker_prn(id: Uuid) -> String {
    format!("prn:core.worker:{id}")
}

pub fn content_path(ty: ContentType) -> &'static str {
    match ty {
        ContentType::Blob => "blobs",
        ContentType::Manifest => "manifests",
        ContentType::Tag => "tags",
        ContentType::Signature => "signatures",
    }
}

pub fn content_href(key: &ContentKey) -> String {
    format!(
        "{API}content/container/{}/{}/",
        content_path(key.content_type()),
        content_id(key)
    )
}

pub fn resource_href(r: &ResourceRef) -> String {
    match r {
        ResourceRef::Repository { id, kind } => repo_href(*id, *kind),
        ResourceRef::RepositoryVersion {
            repository,
            kind,
            number,
        } => version_href(*repository, *kind, *number),
        ResourceRef::Remote { id } => remote_href(*id),
        ResourceRef::Distribution { id } => dist_href(*id),
        ResourceRef::Namespace { id } => namespace_href(*id),
        ResourceRef::PullThroughRemote { id } => pt_remote_href(*id),
        ResourceRef::PullThroughDistribution { id } => pt_dist_href(*id),
    }
}

fn resource_prn(r: &ResourceRef) -> String {
    match r {
        ResourceRef::Repository { id, kind } => repo_prn(*id, *kind),
        ResourceRef::RepositoryVersion { repository, number, .. } => {
            format!("prn:core.repositoryversion:{}", version_id(*repository, *number))
        }
        ResourceRef::Remote { id } => format!("prn:container.containerremote:{id}"),
        ResourceRef::Distribution { id } => format!("prn:container.containerdistribution:{id}"),
        ResourceRef::Namespace { id } => namespace_prn(*id),
        ResourceRef::PullThroughRemote { id } => pt_remote_prn(*id),
        ResourceRef::PullThroughDistribution { id } => pt_dist_prn(*id),
    }
}

pub fn repo_prn(id: Uuid, kind: RepositoryKind) -> String {
    match kind {
        RepositoryKind::Mirror => format!("prn:container.containerrepository:{id}"),
        RepositoryKind::Push => format!("prn:container.containerpushrepository:{id}"),
    }
}

/// A stable id for a repository version (versions are numbered, Pulp gives them ids too).
pub fn version_id(repo: Uuid, n: u64) -> Uuid {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(format!("{repo}/{n}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

pub fn repository(r: &Repository) -> Value {
    let href = repo_href(r.id, r.kind);
    let mut v = json!({
        "pulp_href": href,
        "prn": repo_prn(r.id, r.kind),
        "pulp_created": ts(&r.created),
        "pulp_last_updated": ts(&r.updated),
        "versions_href": format!("{href}versions/"),
        "pulp_labels": r.pulp_labels,
        "latest_version_href": version_href(r.id, r.kind, r.latest_version),
        "name": r.name,
        "description": r.description,
        "retain_repo_versions": r.retain_repo_versions,
        "retain_checkpoints": null,
        "manifest_signing_service": null,
    });
    if r.kind == RepositoryKind::Mirror {
        v["remote"] = json!(r.remote.map(remote_href));
    }
    v
}

fn summary_part(counts: &crate::domain::ContentTypeCounts, filter: &str, vhref: &str) -> Value {
    let mut m = Map::new();
    for (ty, n) in counts {
        if *n > 0 {
            m.insert(
                ty.pulp_name().to_owned(),
                json!({
                    "count": n,
                    "href": format!("{API}content/container/{}/?{filter}={vhref}", content_path(*ty)),
                }),
            );
        }
    }
    Value::Object(m)
}

pub fn content_summary(s: &ContentSummary, vhref: &str) -> Value {
    json!({
        "added": summary_part(&s.added, "repository_version_added", vhref),
        "removed": summary_part(&s.removed, "repository_version_removed", vhref),
        "present": summary_part(&s.present, "repository_version", vhref),
    })
}

pub fn version(r: &Repository, v: &RepositoryVersion) -> Value {
    let href = version_href(r.id, r.kind, v.number);
    json!({
        "pulp_href": href,
        "prn": format!("prn:core.repositoryversion:{}", version_id(r.id, v.number)),
        "pulp_created": ts(&v.created),
        "pulp_last_updated": ts(&v.created),
        "number": v.number,
        "repository": repo_href(r.id, r.kind),
        "base_version": v.base_version.map(|b| version_href(r.id, r.kind, b)),
        "content_summary": content_summary(&v.content_summary, &href),
    })
}

pub fn remote(r: &Remote) -> Value {
    let hidden = |name: &str, set: bool| json!({"name": name, "is_set": set});
    json!({
        "pulp_href": remote_href(r.id),
        "prn": format!("prn:container.containerremote:{}", r.id),
        "pulp_created": ts(&r.created),
        "pulp_last_updated": ts(&r.updated),
        "name": r.name,
        "url": r.url,
        "pulp_labels": r.pulp_labels,
        "policy": r.policy.as_str(),
        "hidden_fields": [
            hidden("client_key", r.client_key.is_some()),
            hidden("proxy_username", r.proxy_username.is_some()),
            hidden("proxy_password", r.proxy_password.is_some()),
            hidden("username", r.username.is_some()),
            hidden("password", r.password.is_some()),
            hidden("include_tags", false),
            hidden("exclude_tags", false),
        ],
        "ca_cert": r.ca_cert,
        "client_cert": r.client_cert,
        "tls_validation": r.tls_validation,
        "proxy_url": r.proxy_url,
        "max_retries": r.max_retries,
        "total_timeout": r.total_timeout,
        "connect_timeout": r.connect_timeout,
        "sock_connect_timeout": r.sock_connect_timeout,
        "sock_read_timeout": r.sock_read_timeout,
        "headers": r.headers.as_ref().map(RemoteHeaders::to_json),
        "download_concurrency": r.download_concurrency,
        "rate_limit": r.rate_limit,
        "upstream_name": r.upstream_name,
        "includes": r.includes,
        "excludes": r.excludes,
        "sigstore": r.sigstore,
    })
}

/// `repo_kinds` tells the kind of the distribution's repository (for its href).
pub fn distribution(d: &Distribution, kind: Option<RepositoryKind>, host: &str) -> Value {
    let (repository, repository_version) = match (d.repository, d.version, kind) {
        (Some(id), None, Some(k)) => (json!(repo_href(id, k)), Value::Null),
        (Some(id), Some(n), Some(k)) => (Value::Null, json!(version_href(id, k, n))),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "pulp_href": dist_href(d.id),
        "prn": format!("prn:container.containerdistribution:{}", d.id),
        "pulp_created": ts(&d.created),
        "pulp_last_updated": ts(&d.updated),
        "base_path": d.base_path.as_str(),
        "content_guard": null,
        "content_guard_prn": null,
        "hidden": d.hidden,
        "pulp_labels": d.pulp_labels,
        "name": d.name,
        "repository": repository,
        "repository_version": repository_version,
        "no_content_change_since": null,
        "registry_path": format!("{host}/{}", d.base_path),
        "remote": d.remote.map(remote_href),
        "namespace": d.namespace.map(namespace_href),
        "private": d.private,
        "description": d.description,
    })
}

/// A pull-through remote: a container remote's fields but `upstream_name`, `sigstore` and
/// the tag filter aliases.
pub fn pull_through_remote(r: &Remote) -> Value {
    let mut v = remote(r);
    if let Value::Object(m) = &mut v {
        for k in ["upstream_name", "sigstore"] {
            m.remove(k);
        }
        m.insert("pulp_href".into(), json!(pt_remote_href(r.id)));
        m.insert("prn".into(), json!(pt_remote_prn(r.id)));
        if let Some(Value::Array(h)) = m.get_mut("hidden_fields") {
            h.retain(|f| !matches!(f["name"].as_str(), Some("include_tags" | "exclude_tags")));
        }
    }
    v
}

/// A pull-through distribution, with the distributions pulls through it made.
pub fn pull_through_distribution(d: &Distribution, children: &[Uuid]) -> Value {
    json!({
        "pulp_href": pt_dist_href(d.id),
        "prn": pt_dist_prn(d.id),
        "pulp_created": ts(&d.created),
        "pulp_last_updated": ts(&d.updated),
        "base_path": d.base_path.as_str(),
        "content_guard": null,
        "content_guard_prn": null,
        "hidden": d.hidden,
        "pulp_labels": d.pulp_labels,
        "name": d.name,
        "repository": null,
        "repository_version": null,
        "no_content_change_since": null,
        "remote": d.remote.map(pt_remote_href),
        "distributions": children.iter().map(|id| dist_href(*id)).collect::<Vec<_>>(),
        "namespace": d.namespace.map(namespace_href),
        "private": d.private,
        "description": d.description,
    })
}

pub fn namespace(ns: &Namespace) -> Value {
    json!({
        "pulp_href": namespace_href(ns.id),
        "prn": namespace_prn(ns.id),
        "pulp_created": ts(&ns.created),
        "pulp_last_updated": ts(&ns.updated),
        "name": ns.name,
        "pulp_labels": ns.pulp_labels,
    })
}

pub fn worker(w: &WorkerRecord) -> Value {
    json!({
        "pulp_href": worker_href(w.id),
        "prn": worker_prn(w.id),
        "pulp_created": ts(&w.created),
        "pulp_last_updated": ts(&w.last_heartbeat),
        "name": w.name,
        "last_heartbeat": ts(&w.last_heartbeat),
        "versions": w.versions,
        "current_task": w.current_task.map(task_href),
    })
}

pub fn task(t: &Task) -> Value {
    let error = t.error.as_ref().map(|e| json!({"description": e, "traceback": null}));
    let mut reserved: Vec<String> = t.reserved_resources.iter().map(resource_prn).collect();
    reserved.extend(t.shared_resources.iter().map(|r| format!("shared:{}", resource_prn(r))));
    json!({
        "pulp_href": task_href(t.id),
        "prn": format!("prn:core.task:{}", t.id),
        "pulp_created": ts(&t.created),
        "pulp_last_updated": ts(&t.updated),
        "state": t.state.as_str(),
        "name": t.name,
        "logging_cid": t.logging_cid,
        "created_by": null,
        "unblocked_at": t.started.as_ref().map(ts),
        "started_at": t.started.as_ref().map(ts),
        "finished_at": t.finished.as_ref().map(ts),
        "error": error,
        "worker": null,
        "parent_task": null,
        "child_tasks": [],
        "task_group": null,
        "progress_reports": t.progress_reports.iter().map(|p| json!({
            "message": p.message, "code": p.code, "state": p.state, "total": p.total, "done": p.done, "suffix": null,
        })).collect::<Vec<_>>(),
        "created_resources": t.created_resources.iter().map(resource_href).collect::<Vec<_>>(),
        "created_resource_prns": t.created_resources.iter().map(resource_prn).collect::<Vec<_>>(),
        "reserved_resources_record": reserved,
        "result": null,
        "pulp_api_version": "v3",
    })
}

fn content_base(key: &ContentKey, created: Option<&DateTime<Utc>>) -> Map<String, Value> {
    let mut m = Map::new();
    let id = content_id(key);
    let ty = key.content_type();
    m.insert("pulp_href".into(), json!(content_href(key)));
    m.insert(
        "prn".into(),
        json!(format!(
            "prn:container.{}:{id}",
            match ty {
                ContentType::Blob => "blob",
                ContentType::Manifest => "manifest",
                ContentType::Tag => "tag",
                ContentType::Signature => "manifestsignature",
            }
        )),
    );
    let created = created.map(ts);
    m.insert("pulp_created".into(), json!(created));
    m.insert("pulp_last_updated".into(), json!(created));
    m.insert("pulp_labels".into(), json!({}));
    m.insert("vuln_report".into(), Value::Null);
    m
}

pub fn blob(key: &ContentKey, created: Option<&DateTime<Utc>>) -> Value {
    let mut m = content_base(key, created);
    if let ContentKey::Blob(d) = key {
        m.insert("digest".into(), json!(d));
        m.insert("artifact".into(), Value::Null);
    }
    Value::Object(m)
}

pub fn manifest(key: &ContentKey, rec: Option<&ManifestRecord>) -> Value {
    let mut m = content_base(key, rec.map(|r| &r.created));
    if let ContentKey::Manifest(d) = key {
        m.insert("digest".into(), json!(d));
        m.insert("artifact".into(), Value::Null);
    }
    if let Some(r) = rec {
        let p = &r.parsed;
        let blob_href = |d: &crate::domain::Digest| content_href(&ContentKey::Blob(d.clone()));
        let platform = p.manifests.iter().find_map(|c| c.platform.clone());
        let _ = platform;
        m.insert("schema_version".into(), json!(2));
        m.insert("media_type".into(), json!(p.media_type));
        m.insert(
            "type".into(),
            json!(match p.kind {
                crate::domain::ManifestKind::Image => "image",
                crate::domain::ManifestKind::Index => "index",
                crate::domain::ManifestKind::Artifact => "artifact",
            }),
        );
        m.insert(
            "listed_manifests".into(),
            json!(p
                .manifests
                .iter()
                .map(|c| content_href(&ContentKey::Manifest(c.digest.clone())))
                .collect::<Vec<_>>()),
        );
        m.insert(
            "config_blob".into(),
            json!(p.config.as_ref().map(|c| blob_href(&c.digest))),
        );
        m.insert(
            "blobs".into(),
            json!(p.layers.iter().map(|l| blob_href(&l.digest)).collect::<Vec<_>>()),
        );
        m.insert("annotations".into(), json!(p.annotations));
        m.insert("labels".into(), json!({}));
        m.insert("is_bootable".into(), json!(false));
        m.insert("is_flatpak".into(), json!(false));
        m.insert(
            "compressed_image_size".into(),
            json!(p.layers.iter().map(|l| l.size).sum::<u64>()),
        );
        m.insert("artifact_type".into(), json!(p.artifact_type));
    }
    Value::Object(m)
}

pub fn tag(key: &ContentKey, created: Option<&DateTime<Utc>>) -> Value {
    let mut m = content_base(key, created);
    if let ContentKey::Tag { name, manifest } = key {
        m.insert("name".into(), json!(name));
        m.insert(
            "tagged_manifest".into(),
            json!(content_href(&ContentKey::Manifest(manifest.clone()))),
        );
    }
    Value::Object(m)
}

pub fn signature(key: &ContentKey, created: Option<&DateTime<Utc>>) -> Value {
    let mut m = content_base(key, created);
    if let ContentKey::Signature(d) = key {
        m.insert("digest".into(), json!(d));
    }
    Value::Object(m)
}

/// A unit of any type as the generic content list shows it (pulpcore's
/// `MultipleArtifactContentSerializer`): the fields every unit has, with the href and PRN of
/// its own type, and `artifacts`, its files by relative path. Only a blob has one, under its
/// digest; it links no artifact (Berth has no artifacts resource, as the blob's own
/// `artifact` says).
pub fn any_content(key: &ContentKey, created: Option<&DateTime<Utc>>) -> Value {
    let mut m = content_base(key, created);
    let artifacts = match key {
        ContentKey::Blob(d) => json!({ d.as_str(): null }),
        _ => json!({}),
    };
    m.insert("artifacts".into(), artifacts);
    Value::Object(m)
}

pub fn schedule_href(id: Uuid) -> String {
    format!("/pulp/api/v3/task-schedules/{id}/")
}

pub fn schedule_prn(id: Uuid) -> String {
    format!("prn:core.taskschedule:{id}")
}

/// A schedule as pulpcore's `TaskScheduleSerializer` has it, with what it runs and its cron
/// expression after (Berth's own fields).
pub fn schedule(s: &Schedule) -> Value {
    let mut v = json!({
        "pulp_href": schedule_href(s.id),
        "prn": schedule_prn(s.id),
        "pulp_created": ts(&s.created),
        "pulp_last_updated": ts(&s.updated),
        "name": s.name,
        "task_name": crate::services::schedule_task_name(&s.work),
        "dispatch_interval": s.cadence.interval_secs().map(crate::domain::schedule::format_interval),
        "next_dispatch": s.next_dispatch.as_ref().map(ts),
        "last_task": s.last_task.map(task_href),
        "cron": s.cadence.cron_expr(),
        "enabled": s.enabled,
    });
    match &s.work {
        ScheduledWork::Sync {
            repository,
            remote,
            mirror,
            signed_only,
        } => {
            v["repository"] = json!(repo_href(*repository, RepositoryKind::Mirror));
            v["remote"] = json!(remote_href(*remote));
            v["mirror"] = json!(mirror);
            v["signed_only"] = json!(signed_only);
        }
        ScheduledWork::OrphanCleanup { protection_secs } => {
            v["orphan_protection_time"] = json!(protection_secs / 60);
        }
    }
    v
}

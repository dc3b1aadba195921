//! The operation table: every operation the management API serves, with Pulp's
//! operationIds. The router dispatches through this table and the OpenAPI document is
//! generated from it, so the two cannot drift.

use http::Method;

pub use super::params::ParamType;
use super::params::*;

/// Every operation, one variant each; the dispatcher matches on it exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpId {
    RepoList,
    RepoCreate,
    RepoRead,
    RepoPartialUpdate,
    RepoUpdate,
    RepoDelete,
    RepoSync,
    RepoCopyTags,
    RepoCopyManifests,
    RepoRemove,
    RepoAdd,
    RepoTag,
    RepoUntag,
    RepoVersionsList,
    RepoVersionsRead,
    RepoVersionsDelete,
    RepoVersionsRepair,
    PushList,
    PushRead,
    PushPartialUpdate,
    PushUpdate,
    PushDelete,
    PushTag,
    PushUntag,
    PushRemoveImage,
    PushVersionsList,
    PushVersionsRead,
    PushVersionsDelete,
    PushVersionsRepair,
    RemoteList,
    RemoteCreate,
    RemoteRead,
    RemotePartialUpdate,
    RemoteUpdate,
    RemoteDelete,
    DistList,
    DistCreate,
    DistRead,
    DistPartialUpdate,
    DistUpdate,
    DistDelete,
    PtRemoteList,
    PtRemoteCreate,
    PtRemoteRead,
    PtRemotePartialUpdate,
    PtRemoteUpdate,
    PtRemoteDelete,
    PtDistList,
    PtDistCreate,
    PtDistRead,
    PtDistPartialUpdate,
    PtDistUpdate,
    PtDistDelete,
    TaskList,
    TaskRead,
    TaskCancel,
    TaskDelete,
    BlobList,
    BlobRead,
    ManifestList,
    ManifestRead,
    TagList,
    TagRead,
    SignatureList,
    SignatureRead,
    ContentList,
    OrphansCleanup,
    Status,
    NamespaceList,
    NamespaceCreate,
    NamespaceRead,
    NamespaceDelete,
    WorkerList,
    WorkerRead,
    UserList,
    UserCreate,
    UserRead,
    UserPartialUpdate,
    UserUpdate,
    UserDelete,
    UserRoleList,
    UserRoleCreate,
    UserRoleRead,
    UserRoleDelete,
    GroupList,
    GroupCreate,
    GroupRead,
    GroupPartialUpdate,
    GroupUpdate,
    GroupDelete,
    GroupUserList,
    GroupUserCreate,
    GroupUserDelete,
    GroupRoleList,
    GroupRoleCreate,
    GroupRoleRead,
    GroupRoleDelete,
    RoleList,
    RoleRead,
    ScheduleList,
    ScheduleCreate,
    ScheduleRead,
    SchedulePartialUpdate,
    ScheduleUpdate,
    ScheduleDelete,
    /// A role action on an object of this kind.
    Roles(RoleOp, crate::store::ObjectKind),
}

/// The role actions every object with roles has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleOp {
    List,
    Add,
    Remove,
    MyPermissions,
}

pub struct Op {
    pub id: OpId,
    pub operation_id: &'static str,
    pub method: Method,
    /// The concrete path: literal segments, `{id}` (a UUID) and `{n}` (a version number).
    pub pattern: &'static str,
    /// The `{…_href}` parameter and the part of `pattern` it stands for.
    pub href: Option<(&'static str, &'static str)>,
    pub query: &'static [(&'static str, ParamType)],
    pub body: bool,
    pub status: u16,
    /// Served without credentials.
    pub public: bool,
    pub tag: &'static str,
}

// The query parameters of each operation, declared as pulpcore 3.85 and pulp_container 2.26
// declare them (their filtersets as drf-spectacular renders them; checked against that
// document by `tests/pulp_openapi.rs`). Berth declares a subset: only filters it applies.
const REPO: &str = "/pulp/api/v3/repositories/container/container/{id}/";
const REPO_V: &str = "/pulp/api/v3/repositories/container/container/{id}/versions/{n}/";
const PUSH: &str = "/pulp/api/v3/repositories/container/container-push/{id}/";
const PUSH_V: &str = "/pulp/api/v3/repositories/container/container-push/{id}/versions/{n}/";
const REMOTE: &str = "/pulp/api/v3/remotes/container/container/{id}/";
const DIST: &str = "/pulp/api/v3/distributions/container/container/{id}/";
const TASK: &str = "/pulp/api/v3/tasks/{id}/";
const NAMESPACE: &str = "/pulp/api/v3/pulp_container/namespaces/{id}/";
const WORKER: &str = "/pulp/api/v3/workers/{id}/";

const R_HREF: Option<(&str, &str)> = Some(("container_container_repository_href", REPO));
const RV_HREF: Option<(&str, &str)> = Some(("container_container_repository_version_href", REPO_V));
const P_HREF: Option<(&str, &str)> = Some(("container_container_push_repository_href", PUSH));
const PV_HREF: Option<(&str, &str)> = Some(("container_container_push_repository_version_href", PUSH_V));

macro_rules! op {
    ($id:ident, $oid:literal, $m:ident, $pat:expr, $href:expr, $q:expr, $body:literal, $status:literal, $tag:literal) => {
        Op {
            id: OpId::$id,
            operation_id: $oid,
            method: Method::$m,
            pattern: $pat,
            href: $href,
            query: $q,
            body: $body,
            status: $status,
            public: false,
            tag: $tag,
        }
    };
}

pub(super) use op;

pub static OPS: &[Op] = &[
    op! {
        RepoList, "repositories_container_container_list", GET,
        "/pulp/api/v3/repositories/container/container/", None,
        REPOS, false, 200, "Repositories: Container"
    },
    op! {
        RepoCreate, "repositories_container_container_create", POST,
        "/pulp/api/v3/repositories/container/container/", None,
        &[], true, 201, "Repositories: Container"
    },
    op! {
        RepoRead, "repositories_container_container_read", GET,
        REPO, R_HREF,
        READ, false, 200, "Repositories: Container"
    },
    op! {
        RepoPartialUpdate, "repositories_container_container_partial_update", PATCH,
        REPO, R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoUpdate, "repositories_container_container_update", PUT,
        REPO, R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoDelete, "repositories_container_container_delete", DELETE,
        REPO, R_HREF,
        &[], false, 202, "Repositories: Container"
    },
    op! {
        RepoSync, "repositories_container_container_sync", POST,
        "/pulp/api/v3/repositories/container/container/{id}/sync/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoCopyTags, "repositories_container_container_copy_tags", POST,
        "/pulp/api/v3/repositories/container/container/{id}/copy_tags/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoCopyManifests, "repositories_container_container_copy_manifests", POST,
        "/pulp/api/v3/repositories/container/container/{id}/copy_manifests/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoRemove, "repositories_container_container_remove", POST,
        "/pulp/api/v3/repositories/container/container/{id}/remove/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoAdd, "repositories_container_container_add", POST,
        "/pulp/api/v3/repositories/container/container/{id}/add/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoTag, "repositories_container_container_tag", POST,
        "/pulp/api/v3/repositories/container/container/{id}/tag/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoUntag, "repositories_container_container_untag", POST,
        "/pulp/api/v3/repositories/container/container/{id}/untag/", R_HREF,
        &[], true, 202, "Repositories: Container"
    },
    op! {
        RepoVersionsList, "repositories_container_container_versions_list", GET,
        "/pulp/api/v3/repositories/container/container/{id}/versions/", R_HREF,
        VERSIONS, false, 200, "Repositories: Container Versions"
    },
    op! {
        RepoVersionsRead, "repositories_container_container_versions_read", GET,
        REPO_V, RV_HREF,
        READ, false, 200, "Repositories: Container Versions"
    },
    op! {
        RepoVersionsDelete, "repositories_container_container_versions_delete", DELETE,
        REPO_V, RV_HREF,
        &[], false, 202, "Repositories: Container Versions"
    },
    op! {
        RepoVersionsRepair, "repositories_container_container_versions_repair", POST,
        "/pulp/api/v3/repositories/container/container/{id}/versions/{n}/repair/", RV_HREF,
        &[], true, 202, "Repositories: Container Versions"
    },
    op! {
        PushList, "repositories_container_container_push_list", GET,
        "/pulp/api/v3/repositories/container/container-push/", None,
        REPOS, false, 200, "Repositories: Container-Push"
    },
    op! {
        PushRead, "repositories_container_container_push_read", GET,
        PUSH, P_HREF,
        READ, false, 200, "Repositories: Container-Push"
    },
    op! {
        PushPartialUpdate, "repositories_container_container_push_partial_update", PATCH,
        PUSH, P_HREF,
        &[], true, 202, "Repositories: Container-Push"
    },
    op! {
        PushUpdate, "repositories_container_container_push_update", PUT,
        PUSH, P_HREF,
        &[], true, 202, "Repositories: Container-Push"
    },
    op! {
        PushDelete, "repositories_container_container_push_delete", DELETE,
        PUSH, P_HREF,
        &[], false, 202, "Repositories: Container-Push"
    },
    op! {
        PushTag, "repositories_container_container_push_tag", POST,
        "/pulp/api/v3/repositories/container/container-push/{id}/tag/", P_HREF,
        &[], true, 202, "Repositories: Container-Push"
    },
    op! {
        PushUntag, "repositories_container_container_push_untag", POST,
        "/pulp/api/v3/repositories/container/container-push/{id}/untag/", P_HREF,
        &[], true, 202, "Repositories: Container-Push"
    },
    op! {
        PushRemoveImage, "repositories_container_container_push_remove_image", POST,
        "/pulp/api/v3/repositories/container/container-push/{id}/remove_image/", P_HREF,
        &[], true, 202, "Repositories: Container-Push"
    },
    op! {
        PushVersionsList, "repositories_container_container_push_versions_list", GET,
        "/pulp/api/v3/repositories/container/container-push/{id}/versions/", P_HREF,
        VERSIONS, false, 200, "Repositories: Container-Push Versions"
    },
    op! {
        PushVersionsRead, "repositories_container_container_push_versions_read", GET,
        PUSH_V, PV_HREF,
        READ, false, 200, "Repositories: Container-Push Versions"
    },
    op! {
        PushVersionsDelete, "repositories_container_container_push_versions_delete", DELETE,
        PUSH_V, PV_HREF,
        &[], false, 202, "Repositories: Container-Push Versions"
    },
    op! {
        PushVersionsRepair, "repositories_container_container_push_versions_repair", POST,
        "/pulp/api/v3/repositories/container/container-push/{id}/versions/{n}/repair/", PV_HREF,
        &[], true, 202, "Repositories: Container-Push Versions"
    },
    op! {
        RemoteList, "remotes_container_container_list", GET,
        "/pulp/api/v3/remotes/container/container/", None,
        REMOTES, false, 200, "Remotes: Container"
    },
    op! {
        RemoteCreate, "remotes_container_container_create", POST,
        "/pulp/api/v3/remotes/container/container/", None,
        &[], true, 201, "Remotes: Container"
    },
    op! {
        RemoteRead, "remotes_container_container_read", GET,
        REMOTE, Some(("container_container_remote_href", REMOTE)),
        READ, false, 200, "Remotes: Container"
    },
    op! {
        RemotePartialUpdate, "remotes_container_container_partial_update", PATCH,
        REMOTE, Some(("container_container_remote_href", REMOTE)),
        &[], true, 202, "Remotes: Container"
    },
    op! {
        RemoteUpdate, "remotes_container_container_update", PUT,
        REMOTE, Some(("container_container_remote_href", REMOTE)),
        &[], true, 202, "Remotes: Container"
    },
    op! {
        RemoteDelete, "remotes_container_container_delete", DELETE,
        REMOTE, Some(("container_container_remote_href", REMOTE)),
        &[], false, 202, "Remotes: Container"
    },
    op! {
        DistList, "distributions_container_container_list", GET,
        "/pulp/api/v3/distributions/container/container/", None,
        DISTS, false, 200, "Distributions: Container"
    },
    op! {
        DistCreate, "distributions_container_container_create", POST,
        "/pulp/api/v3/distributions/container/container/", None,
        &[], true, 202, "Distributions: Container"
    },
    op! {
        DistRead, "distributions_container_container_read", GET,
        DIST, Some(("container_container_distribution_href", DIST)),
        READ, false, 200, "Distributions: Container"
    },
    op! {
        DistPartialUpdate, "distributions_container_container_partial_update", PATCH,
        DIST, Some(("container_container_distribution_href", DIST)),
        &[], true, 202, "Distributions: Container"
    },
    op! {
        DistUpdate, "distributions_container_container_update", PUT,
        DIST, Some(("container_container_distribution_href", DIST)),
        &[], true, 202, "Distributions: Container"
    },
    op! {
        DistDelete, "distributions_container_container_delete", DELETE,
        DIST, Some(("container_container_distribution_href", DIST)),
        &[], false, 202, "Distributions: Container"
    },
    op! {
        TaskList, "tasks_list", GET,
        "/pulp/api/v3/tasks/", None,
        TASKS, false, 200, "Tasks"
    },
    op! {
        TaskRead, "tasks_read", GET,
        TASK, Some(("task_href", TASK)),
        READ, false, 200, "Tasks"
    },
    op! {
        TaskCancel, "tasks_cancel", PATCH,
        TASK, Some(("task_href", TASK)),
        &[], true, 200, "Tasks"
    },
    op! {
        TaskDelete, "tasks_delete", DELETE,
        TASK, Some(("task_href", TASK)),
        &[], false, 204, "Tasks"
    },
    op! {
        BlobList, "content_container_blobs_list", GET,
        "/pulp/api/v3/content/container/blobs/", None,
        BLOBS, false, 200, "Content: Blobs"
    },
    op! {
        BlobRead, "content_container_blobs_read", GET,
        "/pulp/api/v3/content/container/blobs/{id}/", Some(("container_blob_href", "/pulp/api/v3/content/container/blobs/{id}/")),
        READ, false, 200, "Content: Blobs"
    },
    op! {
        ManifestList, "content_container_manifests_list", GET,
        "/pulp/api/v3/content/container/manifests/", None,
        MANIFESTS, false, 200, "Content: Manifests"
    },
    op! {
        ManifestRead, "content_container_manifests_read", GET,
        "/pulp/api/v3/content/container/manifests/{id}/", Some(("container_manifest_href", "/pulp/api/v3/content/container/manifests/{id}/")),
        READ, false, 200, "Content: Manifests"
    },
    op! {
        TagList, "content_container_tags_list", GET,
        "/pulp/api/v3/content/container/tags/", None,
        TAGS, false, 200, "Content: Tags"
    },
    op! {
        TagRead, "content_container_tags_read", GET,
        "/pulp/api/v3/content/container/tags/{id}/", Some(("container_tag_href", "/pulp/api/v3/content/container/tags/{id}/")),
        READ, false, 200, "Content: Tags"
    },
    op! {
        SignatureList, "content_container_signatures_list", GET,
        "/pulp/api/v3/content/container/signatures/", None,
        SIGNATURES, false, 200, "Content: Signatures"
    },
    op! {
        SignatureRead, "content_container_signatures_read", GET,
        "/pulp/api/v3/content/container/signatures/{id}/", Some(("container_manifest_signature_href", "/pulp/api/v3/content/container/signatures/{id}/")),
        READ, false, 200, "Content: Signatures"
    },
    op! {
        ContentList, "content_list", GET,
        "/pulp/api/v3/content/", None,
        ANY_CONTENT, false, 200, "Content"
    },
    op! {
        OrphansCleanup, "orphans_cleanup_cleanup", POST,
        "/pulp/api/v3/orphans/cleanup/", None,
        &[], true, 202, "Orphans: Cleanup"
    },
    op! {
        NamespaceList, "pulp_container_namespaces_list", GET,
        "/pulp/api/v3/pulp_container/namespaces/", None,
        NAMESPACES, false, 200, "Pulp_Container/Namespaces"
    },
    op! {
        NamespaceCreate, "pulp_container_namespaces_create", POST,
        "/pulp/api/v3/pulp_container/namespaces/", None,
        &[], true, 201, "Pulp_Container/Namespaces"
    },
    op! {
        NamespaceRead, "pulp_container_namespaces_read", GET,
        NAMESPACE, Some(("container_container_namespace_href", NAMESPACE)),
        READ, false, 200, "Pulp_Container/Namespaces"
    },
    op! {
        NamespaceDelete, "pulp_container_namespaces_delete", DELETE,
        NAMESPACE, Some(("container_container_namespace_href", NAMESPACE)),
        &[], false, 202, "Pulp_Container/Namespaces"
    },
    op! {
        WorkerList, "workers_list", GET,
        "/pulp/api/v3/workers/", None,
        WORKERS, false, 200, "Workers"
    },
    op! {
        WorkerRead, "workers_read", GET,
        WORKER, Some(("worker_href", WORKER)),
        READ, false, 200, "Workers"
    },
    Op {
        id: OpId::Status,
        operation_id: "status_read",
        method: Method::GET,
        pattern: "/pulp/api/v3/status/",
        href: None,
        query: &[],
        body: false,
        status: 200,
        public: true,
        tag: "Status",
    },
];

/// What a path matched: the operation and the ids in it.
#[derive(Clone, Copy)]
pub struct Matched {
    pub op: &'static Op,
    pub id: Option<uuid::Uuid>,
    pub n: Option<u64>,
    /// A second number (`{m}`: a user in a group).
    pub m: Option<u64>,
}

/// Every operation: the container ones and the accounts ones.
pub fn all() -> impl Iterator<Item = &'static Op> {
    OPS.iter()
        .chain(super::ops_accounts::ops())
        .chain(super::ops_schedules::ops())
        .chain(super::ops_pull_through::ops())
}

fn number(x: &str) -> Option<u64> {
    x.parse::<u64>().ok().filter(|_| x.bytes().all(|b| b.is_ascii_digit()))
}

fn match_pattern(pattern: &str, path: &str) -> Option<(Option<uuid::Uuid>, Option<u64>)> {
    match_full(pattern, path).map(|(id, n, _)| (id, n))
}

fn match_full(pattern: &str, path: &str) -> Option<(Option<uuid::Uuid>, Option<u64>, Option<u64>)> {
    let (mut id, mut n, mut m) = (None, None, None);
    let ps: Vec<&str> = pattern.split('/').collect();
    let xs: Vec<&str> = path.split('/').collect();
    if ps.len() != xs.len() {
        return None;
    }
    for (p, x) in ps.iter().zip(xs.iter()) {
        match *p {
            "{id}" => id = Some(uuid::Uuid::parse_str(x).ok()?),
            "{n}" => n = Some(number(x)?),
            "{m}" => m = Some(number(x)?),
            lit if lit == *x => {}
            _ => return None,
        }
    }
    Some((id, n, m))
}

/// The result of routing a request.
pub enum Route {
    Found(Matched),
    /// The path exists but not with this method.
    MethodNotAllowed,
    NotFound,
}

pub fn route(method: &Method, path: &str) -> Route {
    let mut path_known = false;
    for op in all() {
        if let Some((id, n, m)) = match_full(op.pattern, path) {
            path_known = true;
            if op.method == *method {
                return Route::Found(Matched { op, id, n, m });
            }
        }
    }
    if path_known {
        Route::MethodNotAllowed
    } else {
        Route::NotFound
    }
}

/// Parses an href of the given pattern (e.g. a repository href in a request body).
pub fn parse_href(pattern: &str, href: &str) -> Option<(Option<uuid::Uuid>, Option<u64>)> {
    let path = match href.find("/pulp/api/v3/") {
        Some(i) if i > 0 && (href.starts_with("http://") || href.starts_with("https://")) => &href[i..],
        Some(0) => href,
        _ => return None,
    };
    match_pattern(pattern, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_routes_to_itself() {
        let id = uuid::Uuid::new_v4().to_string();
        for op in all() {
            let path = op.pattern.replace("{id}", &id).replace("{n}", "3").replace("{m}", "4");
            match route(&op.method, &path) {
                Route::Found(m) => assert_eq!(m.op.operation_id, op.operation_id),
                _ => panic!("{} does not route", op.operation_id),
            }
        }
        let ids: std::collections::HashSet<_> = all().map(|o| o.operation_id).collect();
        assert_eq!(ids.len(), all().count(), "operationIds are unique");
    }

    #[test]
    fn hrefs_parse() {
        let id = uuid::Uuid::new_v4();
        let href = format!("/pulp/api/v3/repositories/container/container/{id}/versions/2/");
        assert_eq!(parse_href(REPO_V, &href), Some((Some(id), Some(2))));
        assert_eq!(
            parse_href(REPO_V, &format!("http://h:1{href}")),
            Some((Some(id), Some(2)))
        );
        assert_eq!(parse_href(REPO, &href), None);
        assert_eq!(parse_href(REPO, "nonsense"), None);
        assert_eq!(parse_href(REPO_V, &href.replace("/2/", "/x/")), None);
        assert_eq!(parse_href(REPO_V, &href.replace("/2/", "/+2/")), None);
    }
}

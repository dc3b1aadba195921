//! The operations on pull-through remotes and distributions (pulp_container's
//! `ContainerPullThroughRemoteViewSet` and `ContainerPullThroughDistributionViewSet`), with
//! Pulp's operationIds. Routed and documented with [`super::ops::OPS`].

use http::Method;
use serde_json::{json, Map, Value};

use super::ops::{op, Op, OpId};
use super::params::{ParamType, ORDER_DIST, READ, REMOTES};

use ParamType::{Fields as F, Integer as I, String as S, StringArray as A};

const REMOTE: &str = "/pulp/api/v3/remotes/container/pull-through/{id}/";
const REMOTES_PATH: &str = "/pulp/api/v3/remotes/container/pull-through/";
const DIST: &str = "/pulp/api/v3/distributions/container/pull-through/{id}/";
const DISTS_PATH: &str = "/pulp/api/v3/distributions/container/pull-through/";
const R_HREF: Option<(&str, &str)> = Some(("container_container_pull_through_remote_href", REMOTE));
const D_HREF: Option<(&str, &str)> = Some(("container_container_pull_through_distribution_href", DIST));

/// pulpcore's `DistributionFilter` (the parameters Berth applies): the container
/// distributions' filters but the namespace, which pulp_container adds for those only.
const PT_DISTS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_DIST)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("name", S),
    ("name__in", A),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__startswith", S),
    ("pulp_label_select", S),
    ("base_path", S),
    ("base_path__in", A),
    ("base_path__contains", S),
    ("base_path__icontains", S),
];

static OPS: &[Op] = &[
    op! { PtRemoteList, "remotes_container_pull_through_list", GET, REMOTES_PATH, None, REMOTES, false, 200, "Remotes: Pull-Through" },
    op! { PtRemoteCreate, "remotes_container_pull_through_create", POST, REMOTES_PATH, None, &[], true, 201, "Remotes: Pull-Through" },
    op! { PtRemoteRead, "remotes_container_pull_through_read", GET, REMOTE, R_HREF, READ, false, 200, "Remotes: Pull-Through" },
    op! { PtRemotePartialUpdate, "remotes_container_pull_through_partial_update", PATCH, REMOTE, R_HREF, &[], true, 202, "Remotes: Pull-Through" },
    op! { PtRemoteUpdate, "remotes_container_pull_through_update", PUT, REMOTE, R_HREF, &[], true, 202, "Remotes: Pull-Through" },
    op! { PtRemoteDelete, "remotes_container_pull_through_delete", DELETE, REMOTE, R_HREF, &[], false, 202, "Remotes: Pull-Through" },
    op! { PtDistList, "distributions_container_pull_through_list", GET, DISTS_PATH, None, PT_DISTS, false, 200, "Distributions: Pull-Through" },
    op! { PtDistCreate, "distributions_container_pull_through_create", POST, DISTS_PATH, None, &[], true, 202, "Distributions: Pull-Through" },
    op! { PtDistRead, "distributions_container_pull_through_read", GET, DIST, D_HREF, READ, false, 200, "Distributions: Pull-Through" },
    op! { PtDistPartialUpdate, "distributions_container_pull_through_partial_update", PATCH, DIST, D_HREF, &[], true, 202, "Distributions: Pull-Through" },
    op! { PtDistUpdate, "distributions_container_pull_through_update", PUT, DIST, D_HREF, &[], true, 202, "Distributions: Pull-Through" },
    op! { PtDistDelete, "distributions_container_pull_through_delete", DELETE, DIST, D_HREF, &[], false, 202, "Distributions: Pull-Through" },
];

pub(super) fn ops() -> impl Iterator<Item = &'static Op> {
    OPS.iter()
}

/// The request and response schemas of an operation (Pulp's component names), when Berth
/// declares them.
pub(super) fn schemas(operation_id: &str) -> Option<(&'static str, &'static str)> {
    let (kind, action) = if let Some(a) = operation_id.strip_prefix("remotes_container_pull_through_") {
        ("Remote", a)
    } else if let Some(a) = operation_id.strip_prefix("distributions_container_pull_through_") {
        ("Distribution", a)
    } else {
        return None;
    };
    let s = |remote: &'static str, dist: &'static str| if kind == "Remote" { remote } else { dist };
    let response = s(
        "container.ContainerPullThroughRemoteResponse",
        "container.ContainerPullThroughDistributionResponse",
    );
    const TASK: &str = "AsyncOperationResponse";
    let request = s(
        "container.ContainerPullThroughRemote",
        "container.ContainerPullThroughDistribution",
    );
    Some(match action {
        // the remote is made at once (201), the distribution by a task (202), as in Pulp
        "create" => (request, s(response, TASK)),
        "update" => (request, TASK),
        "partial_update" => (
            s(
                "Patchedcontainer.ContainerPullThroughRemote",
                "Patchedcontainer.ContainerPullThroughDistribution",
            ),
            TASK,
        ),
        "delete" => ("", TASK),
        "list" => (
            "",
            s(
                "Paginatedcontainer.ContainerPullThroughRemoteResponseList",
                "Paginatedcontainer.ContainerPullThroughDistributionResponseList",
            ),
        ),
        "read" => ("", response),
        _ => return None,
    })
}

/// The component schemas [`schemas`] names, with pulp_container's properties.
pub(super) fn components() -> serde_json::Map<String, Value> {
    let s = |t: &str| json!({"type": t});
    let null = |t: &str| json!({"type": t, "nullable": true});
    let write_only = || json!({"type": "string", "nullable": true, "writeOnly": true});
    let uri = || json!({"type": "string", "format": "uri"});
    let labels = || json!({"type": "object", "additionalProperties": {"type": "string", "nullable": true}});
    let timeout = || json!({"type": "number", "format": "double", "minimum": 0.0, "nullable": true});
    let patterns = || json!({"type": "array", "items": {"type": "string", "maxLength": 255}, "nullable": true});
    let read_only = |mut v: Value| {
        v["readOnly"] = json!(true);
        v
    };

    let mut remote = Map::new();
    remote.insert("name".into(), s("string"));
    remote.insert("url".into(), s("string"));
    remote.insert("ca_cert".into(), null("string"));
    remote.insert("client_cert".into(), null("string"));
    remote.insert("client_key".into(), write_only());
    remote.insert("tls_validation".into(), s("boolean"));
    remote.insert("proxy_url".into(), null("string"));
    remote.insert("proxy_username".into(), write_only());
    remote.insert("proxy_password".into(), write_only());
    remote.insert("username".into(), write_only());
    remote.insert("password".into(), write_only());
    remote.insert("pulp_labels".into(), labels());
    remote.insert(
        "download_concurrency".into(),
        json!({"type": "integer", "format": "int64", "minimum": 1, "nullable": true}),
    );
    remote.insert(
        "max_retries".into(),
        json!({"type": "integer", "format": "int64", "nullable": true}),
    );
    remote.insert(
        "policy".into(),
        json!({"type": "string", "enum": ["on_demand"], "default": "on_demand"}),
    );
    for t in [
        "total_timeout",
        "connect_timeout",
        "sock_connect_timeout",
        "sock_read_timeout",
    ] {
        remote.insert(t.into(), timeout());
    }
    remote.insert("headers".into(), json!({"type": "array", "items": {"type": "object"}}));
    remote.insert(
        "rate_limit".into(),
        json!({"type": "integer", "format": "int64", "nullable": true}),
    );
    remote.insert("includes".into(), patterns());
    remote.insert("excludes".into(), patterns());

    let mut remote_response = remote.clone();
    for k in ["client_key", "proxy_username", "proxy_password", "username", "password"] {
        remote_response.remove(k);
    }
    let mut common = Map::new();
    common.insert("pulp_href".into(), read_only(uri()));
    common.insert("prn".into(), read_only(s("string")));
    common.insert(
        "pulp_created".into(),
        read_only(json!({"type": "string", "format": "date-time"})),
    );
    common.insert(
        "pulp_last_updated".into(),
        read_only(json!({"type": "string", "format": "date-time"})),
    );
    remote_response.extend(common.clone());
    remote_response.insert(
        "hidden_fields".into(),
        read_only(json!({"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "is_set": {"type": "boolean"}},
        }})),
    );

    let mut dist = Map::new();
    dist.insert("pulp_labels".into(), labels());
    dist.insert("hidden".into(), json!({"type": "boolean", "default": false}));
    dist.insert(
        "repository".into(),
        json!({"type": "string", "format": "uri", "nullable": true}),
    );
    dist.insert(
        "repository_version".into(),
        json!({"type": "string", "format": "uri", "nullable": true}),
    );
    dist.insert("content_guard".into(), uri());
    dist.insert("base_path".into(), s("string"));
    dist.insert("name".into(), s("string"));
    dist.insert("remote".into(), uri());
    dist.insert("distributions".into(), json!({"type": "array", "items": uri()}));
    dist.insert("private".into(), s("boolean"));
    dist.insert("description".into(), null("string"));
    let mut dist_response = dist.clone();
    dist_response.extend(common);
    dist_response.insert("no_content_change_since".into(), read_only(s("string")));
    dist_response.insert("namespace".into(), read_only(uri()));
    dist_response.insert("content_guard_prn".into(), read_only(null("string")));

    let object = |props: &Map<String, Value>, required: &[&str]| {
        let mut o = json!({"type": "object", "properties": props});
        if !required.is_empty() {
            o["required"] = json!(required);
        }
        o
    };
    let page = |item: &str| {
        json!({
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {"type": "integer"},
                "next": {"type": "string", "nullable": true, "format": "uri"},
                "previous": {"type": "string", "nullable": true, "format": "uri"},
                "results": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            },
        })
    };
    let mut out = Map::new();
    out.insert(
        "AsyncOperationResponse".into(),
        json!({"type": "object", "required": ["task"], "properties": {"task": {"type": "string", "format": "uri"}}}),
    );
    for (kind, request, response, required) in [
        ("Remote", &remote, &remote_response, &["name", "url"][..]),
        (
            "Distribution",
            &dist,
            &dist_response,
            &["base_path", "name", "remote"][..],
        ),
    ] {
        let name = format!("container.ContainerPullThrough{kind}");
        out.insert(name.clone(), object(request, required));
        out.insert(format!("Patched{name}"), object(request, &[]));
        out.insert(format!("{name}Response"), object(response, required));
        out.insert(format!("Paginated{name}ResponseList"), page(&format!("{name}Response")));
    }
    out
}

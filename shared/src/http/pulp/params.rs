//! Query parameters of the operations, declared as Pulp declares them (pulpcore's and
//! pulp_container's filtersets, as drf-spectacular renders them): their types, list styles and
//! choices. The operation table (`ops.rs`) names a list per operation; the OpenAPI document
//! renders them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    /// A string in ISO 8601 (`format: date-time`).
    DateTime,
    /// A string holding a UUID (`format: uuid`).
    Uuid,
    /// A list of strings, comma-separated (django-filter's `…InFilter`).
    StringArray,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A list of these strings, comma-separated.
    ChoiceArray(&'static [&'static str]),
    /// A list of these strings, the parameter repeated for each (`MultipleChoiceFilter`).
    MultiChoice(&'static [&'static str]),
    /// A list of UUIDs, comma-separated.
    UuidArray,
    /// A list of ISO 8601 times, comma-separated (`…__range`).
    DateTimeArray,
    /// A list of strings, the parameter repeated for each (`fields`, `exclude_fields`).
    Fields,
    /// `ordering` by these fields, each ascending or descending (`-field`), comma-separated.
    Ordering(&'static [&'static str]),
}

impl ParamType {
    /// Sent as a list.
    pub fn is_array(self) -> bool {
        !matches!(
            self,
            ParamType::String
                | ParamType::Integer
                | ParamType::Number
                | ParamType::Boolean
                | ParamType::DateTime
                | ParamType::Uuid
                | ParamType::Choice(_)
        )
    }

    /// A list sent as the parameter repeated (OpenAPI's `explode: true`), not comma-separated.
    pub fn is_exploded(self) -> bool {
        matches!(self, ParamType::MultiChoice(_) | ParamType::Fields)
    }
}

use ParamType::{Boolean as B, DateTime as DT, Fields as F, Integer as I, String as S, StringArray as A, Uuid as U};

pub(super) const READ: &[(&str, ParamType)] = &[("fields", F), ("exclude_fields", F)];

/// The fields each list orders by (pulpcore's `filter_fields`/model fields of the filterset).
pub(super) const ORDER_REPO: &[&str] = &[
    "description",
    "name",
    "next_version",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
    "retain_repo_versions",
    "user_hidden",
];
pub(super) const ORDER_REMOTE: &[&str] = &[
    "ca_cert",
    "client_cert",
    "client_key",
    "connect_timeout",
    "download_concurrency",
    "headers",
    "max_retries",
    "name",
    "password",
    "pk",
    "policy",
    "proxy_password",
    "proxy_url",
    "proxy_username",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
    "rate_limit",
    "sock_connect_timeout",
    "sock_read_timeout",
    "tls_validation",
    "total_timeout",
    "url",
    "username",
];
pub(super) const ORDER_NAMESPACE: &[&str] = &["name", "pk", "pulp_created", "pulp_id", "pulp_last_updated"];
pub(super) const ORDER_WORKER: &[&str] = &[
    "last_heartbeat",
    "name",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_last_updated",
    "versions",
];
pub(super) const ORDER_DIST: &[&str] = &[
    "base_path",
    "checkpoint",
    "description",
    "hidden",
    "name",
    "pk",
    "private",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
];
pub(super) const ORDER_VERSION: &[&str] = &[
    "complete",
    "content_ids",
    "info",
    "number",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_last_updated",
];
pub(super) const ORDER_TASK: &[&str] = &[
    "deferred",
    "enc_args",
    "enc_kwargs",
    "error",
    "finished_at",
    "immediate",
    "logging_cid",
    "name",
    "pk",
    "profile_options",
    "pulp_created",
    "pulp_id",
    "pulp_last_updated",
    "reserved_resources_record",
    "started_at",
    "state",
    "unblocked_at",
    "versions",
];
pub(super) const ORDER_BLOB: &[&str] = &[
    "digest",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
    "timestamp_of_interest",
    "upstream_id",
];
pub(super) const ORDER_MANIFEST: &[&str] = &[
    "annotations",
    "architecture",
    "compressed_image_size",
    "data",
    "digest",
    "is_bootable",
    "is_flatpak",
    "labels",
    "media_type",
    "os",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
    "schema_version",
    "timestamp_of_interest",
    "type",
    "upstream_id",
];
pub(super) const ORDER_TAG: &[&str] = &[
    "name",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
    "timestamp_of_interest",
    "upstream_id",
];
pub(super) const ORDER_SIGNATURE: &[&str] = &[
    "creator",
    "data",
    "digest",
    "key_id",
    "name",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_labels",
    "pulp_last_updated",
    "pulp_type",
    "timestamp",
    "timestamp_of_interest",
    "type",
    "upstream_id",
];

/// The media types of pulp_container's manifest and tag `media_type` filters.
pub const MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];
/// The states of pulpcore's task `state` filter.
pub const TASK_STATES: &[&str] = &[
    "waiting",
    "skipped",
    "running",
    "completed",
    "failed",
    "canceled",
    "canceling",
];

/// Repositories (pulpcore's `RepositoryFilter` with `NameFilter` lookups).
pub(super) const REPOS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_REPO)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("name", S),
    ("name__in", A),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__startswith", S),
    ("pulp_label_select", S),
];
/// Remotes (pulpcore's `RemoteFilter`).
pub(super) const REMOTES: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_REMOTE)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("name", S),
    ("name__in", A),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__startswith", S),
    ("pulp_label_select", S),
    ("pulp_last_updated__gte", DT),
    ("pulp_last_updated__lte", DT),
];
/// Distributions (pulp_container's `ContainerDistributionFilter`).
pub(super) const DISTS: &[(&str, ParamType)] = &[
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
    ("namespace__name", S),
];
/// Namespaces (pulp_container's `ContainerNamespaceFilter`).
pub(super) const NAMESPACES: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_NAMESPACE)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("name", S),
    ("name__iexact", S),
    ("name__in", A),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__startswith", S),
    ("name__istartswith", S),
    ("name__regex", S),
    ("name__iregex", S),
];
/// Workers (pulpcore's `WorkerFilter`).
pub(super) const WORKERS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_WORKER)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("name", S),
    ("name__iexact", S),
    ("name__in", A),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__startswith", S),
    ("name__istartswith", S),
    ("name__regex", S),
    ("name__iregex", S),
    ("last_heartbeat", DT),
    ("last_heartbeat__lt", DT),
    ("last_heartbeat__lte", DT),
    ("last_heartbeat__gt", DT),
    ("last_heartbeat__gte", DT),
    ("last_heartbeat__range", ParamType::DateTimeArray),
    ("last_heartbeat__isnull", B),
    ("online", B),
    ("missing", B),
];
/// Repository versions (pulpcore's `RepositoryVersionFilter`).
pub(super) const VERSIONS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_VERSION)),
    ("prn__in", A),
    ("number", I),
    ("number__gt", I),
    ("number__gte", I),
    ("number__lt", I),
    ("number__lte", I),
    ("content", S),
    ("content__in", A),
];
/// Tasks (pulpcore's `TaskFilter`).
pub(super) const TASKS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_TASK)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("name", S),
    ("name__contains", S),
    ("name__in", A),
    ("state", ParamType::Choice(TASK_STATES)),
    ("state__in", A),
    ("worker", U),
    ("worker__in", ParamType::UuidArray),
    ("reserved_resources", S),
    ("reserved_resources__in", A),
    ("exclusive_resources", S),
    ("exclusive_resources__in", A),
    ("shared_resources", S),
    ("shared_resources__in", A),
    ("created_resources", U),
    ("parent_task", U),
    ("task_group", U),
    ("logging_cid", S),
    ("logging_cid__contains", S),
    ("started_at__gte", DT),
    ("started_at__lte", DT),
    ("finished_at__gte", DT),
    ("finished_at__lte", DT),
];
/// Blobs (pulp_container's `BlobFilter`).
pub(super) const BLOBS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_BLOB)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("pulp_label_select", S),
    ("repository_version", S),
    ("repository_version_added", S),
    ("repository_version_removed", S),
    ("digest", S),
    ("digest__in", A),
];
/// Manifests (pulp_container's `ManifestFilter`).
pub(super) const MANIFESTS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_MANIFEST)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("pulp_label_select", S),
    ("repository_version", S),
    ("repository_version_added", S),
    ("repository_version_removed", S),
    ("digest", S),
    ("digest__in", A),
    ("media_type", ParamType::MultiChoice(MEDIA_TYPES)),
    ("is_bootable", B),
    ("is_flatpak", B),
];
/// Tags (pulp_container's `TagFilter`): `digest` is a list (form style, not exploded) matched
/// against the tagged manifest's digest.
pub(super) const TAGS: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_TAG)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("pulp_label_select", S),
    ("repository_version", S),
    ("repository_version_added", S),
    ("repository_version_removed", S),
    ("digest", A),
    ("name", S),
    ("name__in", A),
    ("media_type", ParamType::MultiChoice(MEDIA_TYPES)),
];
/// Signatures (pulp_container's `ManifestSignatureFilter`).
pub(super) const SIGNATURES: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_SIGNATURE)),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("pulp_label_select", S),
    ("repository_version", S),
    ("repository_version_added", S),
    ("repository_version_removed", S),
    ("digest", S),
    ("digest__in", A),
];

/// The content types of the generic content list's `pulp_type` filters, in pulpcore's order.
pub const PULP_TYPES: &[&str] = &[
    "container.blob",
    "container.manifest",
    "container.tag",
    "container.signature",
];
/// Every content type a Pulp with pulp_container has (pulpcore ships its own and pulp_file's):
/// the choices of `pulp_type`; the types Berth does not have select nothing.
pub const ALL_PULP_TYPES: &[&str] = &[
    "container.blob",
    "container.manifest",
    "container.tag",
    "container.signature",
    "core.openpgp_publickey",
    "core.openpgp_publicsubkey",
    "core.openpgp_signature",
    "core.openpgp_userattribute",
    "core.openpgp_userid",
    "core.publishedmetadata",
    "file.file",
];
/// The generic content list, as pulpcore's `ContentFilter` with the `pulp_type` filters a
/// generic list adds; `ordering` takes only the id there (`pk`).
pub(super) const ANY_CONTENT: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(&["pk"])),
    ("prn__in", A),
    ("pulp_href__in", A),
    ("pulp_id__in", ParamType::UuidArray),
    ("pulp_type", ParamType::Choice(ALL_PULP_TYPES)),
    ("pulp_type__in", ParamType::ChoiceArray(ALL_PULP_TYPES)),
    ("repository_version", S),
    ("repository_version_added", S),
    ("repository_version_removed", S),
];

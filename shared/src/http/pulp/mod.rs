//! The Pulp-compatible management API under `/pulp/api/v3/`, enough for the unmodified
//! `pulp` CLI: every operation is in [`ops::OPS`], which both routes requests and generates the
//! OpenAPI document.
//!
//! Wire rules the CLI depends on: `Content-Type: application/json` exactly, the declared
//! status codes (201 for repository and remote create, 202 `{"task": href}` for asynchronous
//! operations), absolute `next`/`previous` links, `Correlation-ID` echoed, no redirects.

pub mod input;
pub mod ops;
pub mod render;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use chrono::Utc;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use self::input::Input;
use self::ops::{Matched, OpId, Route};
use crate::domain::filter::TagFilter;
use crate::domain::{ContentKey, ContentType, Digest, RepoName, Tag};
use crate::services::{DistributionSpec, Login, Manage, ManageError, Serves, Users};
use crate::store::{Policy, Remote, Repository, RepositoryKind, ResourceRef, Task, TaskState, User};

/// The versions the OpenAPI document claims (the CLI checks `core >= 3.49`, `container >= 2.19`).
pub const CORE_VERSION: &str = "3.85.0";
pub const CONTAINER_VERSION: &str = "2.26.0";
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct PulpState {
    pub manage: Arc<Manage>,
    pub users: Arc<Users>,
    /// The URL clients use (for absolute links); derived from `Host` when unset.
    pub public_url: Option<String>,
}

/// A management API error, answered the way Pulp (Django REST framework) answers.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with `{"field": ["message", …]}`.
    Fields(BTreeMap<String, Vec<String>>),
    /// Any status with `{"detail": "…"}`.
    Detail(StatusCode, String),
    Unauthenticated(&'static str),
    /// 429 with `Retry-After` (seconds) and DRF's throttling `detail`.
    Throttled(u64),
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn detail(status: u16, msg: impl Into<String>) -> Self {
        ApiError::Detail(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            msg.into(),
        )
    }

    pub fn field(field: &str, msg: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(field.to_owned(), vec![msg.into()]);
        ApiError::Fields(m)
    }

    fn not_found() -> Self {
        ApiError::detail(404, "Not found.")
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::Field { field, message } => ApiError::field(field, message),
            ManageError::NotFound => ApiError::not_found(),
            ManageError::Busy => ApiError::detail(409, "The repository is busy with another operation; try again."),
            ManageError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<crate::ports::StoreError> for ApiError {
    fn from(e: crate::ports::StoreError) -> Self {
        ManageError::from(e).into()
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Fields(m) => json_response(StatusCode::BAD_REQUEST, &json!(m)),
            ApiError::Detail(s, d) => json_response(s, &json!({ "detail": d })),
            ApiError::Throttled(secs) => {
                let detail = format!("Request was throttled. Expected available in {secs} seconds.");
                let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &json!({ "detail": detail }));
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r
            }
            ApiError::Unauthenticated(msg) => {
                let mut r = json_response(StatusCode::UNAUTHORIZED, &json!({ "detail": msg }));
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"berth\""),
                );
                r
            }
            ApiError::Internal(e) if crate::ports::StoreError::is_no_space_in(e.as_ref()) => {
                tracing::warn!(error = %e, source = ?e.source(), "out of storage space");
                json_response(
                    StatusCode::INSUFFICIENT_STORAGE,
                    &json!({ "detail": format!("Insufficient storage: {}.", crate::http::errors::NO_SPACE_DETAIL) }),
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, source = ?e.source(), "management API internal error");
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"detail": "Internal server error."}),
                )
            }
        }
    }
}

type Answer = Result<Response, ApiError>;

pub fn router(state: PulpState) -> Router {
    Router::new()
        .route("/pulp/api/v3/docs/api.json", get(doc))
        .route("/pulp/api/v3/{*rest}", any(api))
        .with_state(state)
}

async fn doc() -> Response {
    json_response(StatusCode::OK, &ops::openapi(CORE_VERSION, CONTAINER_VERSION))
}

async fn api(State(s): State<PulpState>, req: Request) -> Response {
    let corr = req.headers().get("correlation-id").cloned();
    let mut resp = match handle(&s, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(c) = corr {
        resp.headers_mut().insert("correlation-id", c);
    }
    resp
}

/// What a handler needs of the request.
struct Ctx<'a> {
    s: &'a PulpState,
    m: Matched,
    query: Vec<(String, String)>,
    body: bytes::Bytes,
    /// `scheme://host` for absolute links.
    base_url: String,
    /// The host clients pull from (`registry_path`).
    host: String,
    path: String,
}

impl Ctx<'_> {
    fn manage(&self) -> &Manage {
        &self.s.manage
    }

    fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    /// The values of `key` and `key__in` together (`None` when neither was sent).
    fn q_any(&self, key: &str) -> Option<Vec<String>> {
        match (self.q(key), self.q_list(&format!("{key}__in"))) {
            (None, None) => None,
            (a, b) => Some(a.map(str::to_owned).into_iter().chain(b.unwrap_or_default()).collect()),
        }
    }

    /// All values of a list parameter: repeated, or comma-separated.
    fn q_list(&self, k: &str) -> Option<Vec<String>> {
        let vals: Vec<String> = self
            .query
            .iter()
            .filter(|(x, _)| x == k)
            .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect();
        (!vals.is_empty()).then_some(vals)
    }

    fn id(&self) -> Uuid {
        self.m.id.unwrap_or_default()
    }

    fn input(&self, partial: bool) -> Result<Input, ApiError> {
        Input::parse(&self.body, partial)
    }

    fn ok(&self, v: Value) -> Answer {
        Ok(json_response(StatusCode::OK, &self.select_fields(v)))
    }

    fn task(&self, t: &Task) -> Answer {
        Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({ "task": render::task_href(t.id) }),
        ))
    }

    /// Answers 202 with a task that already completed (work done inside the request).
    async fn done(&self, name: &str, reserved: ResourceRef) -> Answer {
        let t = self.manage().completed_task(name, vec![reserved], vec![], None).await?;
        self.task(&t)
    }

    /// Applies `fields` / `exclude_fields` to one object.
    fn select_fields(&self, mut v: Value) -> Value {
        let fields = self.q_list("fields");
        let exclude = self.q_list("exclude_fields");
        if let Value::Object(m) = &mut v {
            if let Some(f) = fields {
                m.retain(|k, _| f.iter().any(|x| x == k));
            }
            if let Some(e) = exclude {
                m.retain(|k, _| !e.iter().any(|x| x == k));
            }
        }
        v
    }

    /// LimitOffset pagination with absolute links.
    fn page(&self, items: Vec<Value>) -> Answer {
        let parse = |k: &str, default: usize| -> Result<usize, ApiError> {
            match self.q(k) {
                None | Some("") => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| ApiError::field(k, "A valid integer is required.")),
            }
        };
        let limit = parse("limit", 100)?.clamp(1, 1000);
        let offset = parse("offset", 0)?;
        let count = items.len();
        let link = |off: usize| {
            let mut q: Vec<(String, String)> = self
                .query
                .iter()
                .filter(|(k, _)| k != "limit" && k != "offset")
                .cloned()
                .collect();
            q.push(("limit".into(), limit.to_string()));
            if off > 0 {
                q.push(("offset".into(), off.to_string()));
            }
            let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
            format!("{}{}?{qs}", self.base_url, self.path)
        };
        let next = (offset + limit < count).then(|| link(offset + limit));
        let previous = (offset > 0).then(|| link(offset.saturating_sub(limit)));
        let results: Vec<Value> = items
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|v| self.select_fields(v))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"count": count, "next": next, "previous": previous, "results": results}),
        ))
    }

    /// Filters a list by the common name and href parameters.
    fn by_name(&self, name: &str, href: &str, prn: &str) -> bool {
        if let Some(n) = self.q("name") {
            if n != name {
                return false;
            }
        }
        if let Some(ns) = self.q_list("name__in") {
            if !ns.iter().any(|x| x == name) {
                return false;
            }
        }
        if let Some(c) = self.q("name__contains") {
            if !name.contains(c) {
                return false;
            }
        }
        if let Some(c) = self.q("name__icontains") {
            if !name.to_lowercase().contains(&c.to_lowercase()) {
                return false;
            }
        }
        if let Some(c) = self.q("name__startswith") {
            if !name.starts_with(c) {
                return false;
            }
        }
        if let Some(hs) = self.q_list("pulp_href__in") {
            if !hs.iter().any(|h| h.ends_with(href)) {
                return false;
            }
        }
        if let Some(ps) = self.q_list("prn__in") {
            if !ps.iter().any(|p| p == prn) {
                return false;
            }
        }
        true
    }
}

async fn authenticate(users: &Users, headers: &HeaderMap) -> Result<User, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated(
            "Authentication credentials were not provided.",
        ));
    };
    let bad = ApiError::Unauthenticated("Invalid username/password.");
    let creds = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim().to_owned())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some(creds) = creds else {
        return Err(ApiError::Unauthenticated(
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ));
    };
    let Some((user, password)) = creds.split_once(':') else {
        return Err(bad);
    };
    match users
        .authenticate(user, password, crate::http::auth::client_addr())
        .await?
    {
        Login::User(u) => Ok(u),
        Login::Denied => Err(bad),
        Login::Throttled { retry_after } => Err(ApiError::Throttled(crate::http::auth::retry_after_secs(retry_after))),
    }
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost")
        .to_owned()
}

async fn handle(s: &PulpState, req: Request) -> Answer {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let m = match ops::route(&parts.method, &path) {
        Route::Found(m) => m,
        Route::MethodNotAllowed => {
            return Err(ApiError::detail(
                405,
                format!("Method \"{}\" not allowed.", parts.method),
            ));
        }
        Route::NotFound => return Err(ApiError::not_found()),
    };
    if !m.op.public {
        let user = authenticate(&s.users, &parts.headers).await?;
        if parts.method != Method::GET && !user.admin {
            return Err(ApiError::detail(
                403,
                "You do not have permission to perform this action.",
            ));
        }
    }
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::detail(413, "Request body too large or unreadable."))?;
    let host = host_of(&parts.headers);
    let base_url = match &s.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("{}://{host}", crate::http::scheme(&parts.headers)),
    };
    let host = match &s.public_url {
        Some(u) => u.split("://").nth(1).unwrap_or(u).trim_end_matches('/').to_owned(),
        None => host,
    };
    let query = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default();
    let ctx = Ctx {
        s,
        m,
        query,
        body,
        base_url,
        host,
        path,
    };
    dispatch(&ctx).await
}

async fn dispatch(c: &Ctx<'_>) -> Answer {
    use OpId::*;
    match c.m.op.id {
        RepoList => list_repositories(c, RepositoryKind::Mirror).await,
        PushList => list_repositories(c, RepositoryKind::Push).await,
        RepoCreate => create_repository(c).await,
        RepoRead => c.ok(render::repository(
            &c.manage().repository(c.id(), RepositoryKind::Mirror).await?,
        )),
        PushRead => c.ok(render::repository(
            &c.manage().repository(c.id(), RepositoryKind::Push).await?,
        )),
        RepoPartialUpdate => update_repository(c, RepositoryKind::Mirror, true).await,
        RepoUpdate => update_repository(c, RepositoryKind::Mirror, false).await,
        PushPartialUpdate => update_repository(c, RepositoryKind::Push, true).await,
        PushUpdate => update_repository(c, RepositoryKind::Push, false).await,
        RepoDelete => delete_repository(c, RepositoryKind::Mirror).await,
        PushDelete => delete_repository(c, RepositoryKind::Push).await,
        RepoSync => sync(c).await,
        RepoCopyTags => copy_content(c, true).await,
        RepoCopyManifests => copy_content(c, false).await,
        RepoRemove => modify_content(c, false).await,
        RepoAdd => modify_content(c, true).await,
        RepoTag | RepoUntag => tag_modify(c, RepositoryKind::Mirror).await,
        PushTag | PushUntag | PushRemoveImage => tag_modify(c, RepositoryKind::Push).await,
        RepoVersionsList => list_versions(c, RepositoryKind::Mirror).await,
        PushVersionsList => list_versions(c, RepositoryKind::Push).await,
        RepoVersionsRead => read_version(c, RepositoryKind::Mirror).await,
        PushVersionsRead => read_version(c, RepositoryKind::Push).await,
        RepoVersionsDelete => delete_version(c, RepositoryKind::Mirror).await,
        PushVersionsDelete => delete_version(c, RepositoryKind::Push).await,
        RemoteList => list_remotes(c).await,
        RemoteCreate => create_remote(c).await,
        RemoteRead => c.ok(render::remote(&c.manage().remote(c.id()).await?)),
        RemotePartialUpdate => update_remote(c, true).await,
        RemoteUpdate => update_remote(c, false).await,
        RemoteDelete => {
            let id = c.id();
            c.manage().remote(id).await?;
            c.manage().delete_remote(id).await?;
            c.done("pulpcore.app.tasks.base.general_delete", ResourceRef::Remote { id })
                .await
        }
        DistList => list_distributions(c).await,
        DistCreate => create_distribution(c).await,
        DistRead => {
            let d = c.manage().distribution(c.id()).await?;
            c.ok(render_dist(c, &d).await?)
        }
        DistPartialUpdate => update_distribution(c, true).await,
        DistUpdate => update_distribution(c, false).await,
        DistDelete => {
            let id = c.id();
            c.manage().delete_distribution(id).await?;
            c.done(
                "pulpcore.app.tasks.base.general_delete",
                ResourceRef::Distribution { id },
            )
            .await
        }
        TaskList => list_tasks(c).await,
        TaskRead => c.ok(render::task(&c.manage().task(c.id()).await?)),
        TaskCancel => cancel_task(c).await,
        TaskDelete => {
            c.manage().delete_task(c.id()).await?;
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        BlobList => list_content(c, ContentType::Blob).await,
        ManifestList => list_content(c, ContentType::Manifest).await,
        TagList => list_content(c, ContentType::Tag).await,
        SignatureList => list_content(c, ContentType::Signature).await,
        BlobRead => read_content(c, ContentType::Blob).await,
        ManifestRead => read_content(c, ContentType::Manifest).await,
        TagRead => read_content(c, ContentType::Tag).await,
        SignatureRead => read_content(c, ContentType::Signature).await,
        OrphansCleanup => orphans_cleanup(c).await,
        Status => status(c),
    }
}

// ---- repositories ------------------------------------------------------------------------

fn remote_ref(i: &mut Input, field: &str) -> Option<Option<Uuid>> {
    match i.opt_string(field, true) {
        None => None,
        Some(None) => Some(None),
        Some(Some(h)) => match ops::parse_href("/pulp/api/v3/remotes/container/container/{id}/", &h) {
            Some((Some(id), _)) => Some(Some(id)),
            _ => {
                i.err(field, "Invalid hyperlink - No URL match.");
                None
            }
        },
    }
}

/// The repository fields of a create or update body.
struct RepoInput {
    name: Option<String>,
    description: Option<Option<String>>,
    retain: Option<Option<u64>>,
    remote: Option<Option<Uuid>>,
    labels: Option<BTreeMap<String, String>>,
}

fn repo_input(c: &Ctx<'_>, partial: bool, kind: RepositoryKind) -> Result<RepoInput, ApiError> {
    let mut i = c.input(partial)?;
    let name = i.string("name", true);
    if let Some(n) = &name {
        if n.len() > 255 {
            i.err("name", "Ensure this field has no more than 255 characters.");
        }
    }
    let description = i.opt_string("description", false);
    let retain = i.opt_uint("retain_repo_versions", 1);
    let remote = if kind == RepositoryKind::Mirror {
        remote_ref(&mut i, "remote")
    } else {
        None
    };
    let labels = i.labels("pulp_labels");
    i.finish()?;
    Ok(RepoInput {
        name,
        description,
        retain,
        remote,
        labels,
    })
}

async fn list_repositories(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let items = c
        .manage()
        .store()
        .repositories()
        .await?
        .into_iter()
        .filter(|r| r.kind == kind)
        .map(|r| render::repository(&r))
        .filter(|v| {
            c.by_name(
                v["name"].as_str().unwrap_or(""),
                v["pulp_href"].as_str().unwrap_or(""),
                v["prn"].as_str().unwrap_or(""),
            )
        })
        .collect();
    c.page(items)
}

async fn create_repository(c: &Ctx<'_>) -> Answer {
    let inp = repo_input(c, false, RepositoryKind::Mirror)?;
    let mut r = Repository::new(&inp.name.unwrap_or_default(), RepositoryKind::Mirror);
    r.description = inp.description.flatten();
    r.retain_repo_versions = inp.retain.flatten();
    r.remote = inp.remote.flatten();
    r.pulp_labels = inp.labels.unwrap_or_default();
    let r = c.manage().create_repository(r).await?;
    Ok(json_response(StatusCode::CREATED, &render::repository(&r)))
}

async fn update_repository(c: &Ctx<'_>, kind: RepositoryKind, partial: bool) -> Answer {
    let id = c.id();
    c.manage().repository(id, kind).await?;
    let inp = repo_input(c, partial, kind)?;
    c.manage()
        .update_repository(id, |r| {
            if let Some(n) = &inp.name {
                r.name = n.clone();
            }
            if let Some(d) = &inp.description {
                r.description = d.clone();
            } else if !partial {
                r.description = None;
            }
            if let Some(x) = inp.retain {
                r.retain_repo_versions = x;
            }
            if let Some(x) = inp.remote {
                r.remote = x;
            }
            if let Some(l) = &inp.labels {
                r.pulp_labels = l.clone();
            }
            Ok(())
        })
        .await?;
    c.done(
        "pulpcore.app.tasks.base.general_update",
        ResourceRef::Repository { id, kind },
    )
    .await
}

async fn delete_repository(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let id = c.id();
    c.manage().repository(id, kind).await?;
    c.manage().delete_repository(id).await?;
    c.done(
        "pulpcore.app.tasks.base.general_delete",
        ResourceRef::Repository { id, kind },
    )
    .await
}

async fn sync(c: &Ctx<'_>) -> Answer {
    let repo = c.manage().repository(c.id(), RepositoryKind::Mirror).await?;
    let mut i = c.input(false)?;
    let remote = remote_ref(&mut i, "remote");
    let mirror = i.boolean("mirror").unwrap_or(false);
    let signed_only = i.boolean("signed_only").unwrap_or(false);
    i.finish()?;
    let remote = match remote.flatten().or(repo.remote) {
        Some(r) => r,
        None => {
            return Err(ApiError::field(
                "remote",
                "A remote must be specified, or the repository must have a default remote.",
            ))
        }
    };
    let t = c.manage().sync(&repo, remote, mirror, signed_only).await?;
    c.task(&t)
}

/// Starts an orphan cleanup: `orphan_protection_time` in minutes (Pulp's default, a day, when
/// absent or null), `content_hrefs` to consider only those units.
async fn orphans_cleanup(c: &Ctx<'_>) -> Answer {
    let mut i = c.input(false)?;
    let minutes = i.opt_uint("orphan_protection_time", 0).flatten();
    let hrefs = i.opt_str_list("content_hrefs").flatten();
    i.finish()?;
    let only = match hrefs {
        None => None,
        Some(hrefs) => Some(content_keys(c, "content_hrefs", &hrefs).await?),
    };
    let protection = minutes.map_or(crate::services::DEFAULT_PROTECTION, |m| {
        std::time::Duration::from_secs(m.saturating_mul(60))
    });
    let t = c.manage().orphan_cleanup(protection, only).await?;
    c.task(&t)
}

/// `copy_tags` (`names`) and `copy_manifests` (`digests`, `media_types`): adds the selected
/// tags or manifests of a source version (`source_repository`'s latest, or
/// `source_repository_version`), with everything they reference, as one new version; a copied
/// tag replaces the destination's tag of that name.
async fn copy_content(c: &Ctx<'_>, tags: bool) -> Answer {
    let repo = c.manage().repository(c.id(), RepositoryKind::Mirror).await?;
    let mut i = c.input(false)?;
    let source_repo = i.opt_string("source_repository", true).flatten();
    let source_version = i.opt_string("source_repository_version", true).flatten();
    let (names, digests, media_types) = if tags {
        (i.opt_str_list("names").flatten(), None, None)
    } else {
        (
            None,
            i.opt_str_list("digests").flatten(),
            i.opt_str_list("media_types").flatten(),
        )
    };
    match (&source_repo, &source_version) {
        (None, None) => i.err(
            "non_field_errors",
            "Either the 'repository' or 'repository_version' needs to be specified",
        ),
        (Some(_), Some(_)) => i.err(
            "non_field_errors",
            "Either the 'repository' or 'repository_version' need to be specified but not both.",
        ),
        _ => {}
    }
    i.finish()?;
    let (source, number) = match (source_repo, source_version) {
        (Some(h), None) => {
            let id = match ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/", &h) {
                Some((Some(id), _)) => id,
                _ => {
                    return Err(ApiError::field(
                        "source_repository",
                        "Invalid hyperlink - No URL match.",
                    ))
                }
            };
            let r = c
                .manage()
                .store()
                .repository(id)
                .await?
                .filter(|r| r.kind == RepositoryKind::Mirror)
                .ok_or_else(|| ApiError::field("source_repository", "Invalid hyperlink - Object does not exist."))?;
            let n = r.latest_version;
            (r, n)
        }
        (_, Some(h)) => version_by_href(c, "source_repository_version", &h).await?,
        (None, None) => return Err(ApiError::not_found()),
    };
    let store = c.manage().store();
    let ty = if tags { ContentType::Tag } else { ContentType::Manifest };
    let mut keys = Vec::new();
    for k in store.content(source.id, number, ty, None, usize::MAX).await? {
        let keep = match &k {
            ContentKey::Tag { name, .. } => names.as_ref().is_none_or(|n| n.iter().any(|x| x == name.as_str())),
            ContentKey::Manifest(d) => {
                let by_digest = digests.as_ref().is_none_or(|ds| ds.iter().any(|x| x == d.as_str()));
                let by_type = match &media_types {
                    None => true,
                    Some(types) => match store.manifest(d).await? {
                        Some(m) => types.contains(&m.parsed.media_type),
                        None => false,
                    },
                };
                by_digest && by_type
            }
            _ => false,
        };
        if keep {
            keys.push(k);
        }
    }
    let v = c.manage().add(&repo, keys).await?;
    modified(c, "pulp_container.app.tasks.recursive_add_content", &repo, v).await
}

/// The task answer for a modify operation that made (or did not make) a version.
async fn modified(c: &Ctx<'_>, name: &str, repo: &Repository, v: Option<crate::store::RepositoryVersion>) -> Answer {
    let created: Vec<ResourceRef> = v
        .iter()
        .map(|v| ResourceRef::RepositoryVersion {
            repository: repo.id,
            kind: repo.kind,
            number: v.number,
        })
        .collect();
    let t = c
        .manage()
        .completed_task(
            name,
            vec![ResourceRef::Repository {
                id: repo.id,
                kind: repo.kind,
            }],
            created.clone(),
            created.into_iter().next(),
        )
        .await?;
    c.task(&t)
}

fn content_ref(href: &str) -> Option<Uuid> {
    for ty in ContentType::ALL {
        let pat = format!("/pulp/api/v3/content/container/{}/{{id}}/", render::content_path(ty));
        if let Some((Some(id), _)) = ops::parse_href(&pat, href) {
            return Some(id);
        }
    }
    None
}

/// The content units named by `hrefs`; the first unknown one is an error on `field`.
async fn content_keys(c: &Ctx<'_>, field: &str, hrefs: &[String]) -> Result<Vec<ContentKey>, ApiError> {
    let mut keys = Vec::with_capacity(hrefs.len());
    for h in hrefs {
        let key = match content_ref(h) {
            Some(id) => c.manage().store().content_by_id(id).await?,
            None => None,
        };
        match key {
            Some(k) => keys.push(k),
            None => {
                return Err(ApiError::field(
                    field,
                    format!("Invalid hyperlink - Object does not exist: {h}"),
                ))
            }
        }
    }
    Ok(keys)
}

async fn modify_content(c: &Ctx<'_>, add: bool) -> Answer {
    let repo = c.manage().repository(c.id(), RepositoryKind::Mirror).await?;
    let mut i = c.input(false)?;
    let units = i
        .opt_str_list("content_units")
        .or_else(|| {
            i.opt_str_list(if add {
                "add_content_units"
            } else {
                "remove_content_units"
            })
        })
        .flatten();
    let Some(units) = units else {
        i.err("content_units", input::REQUIRED);
        i.finish()?;
        return Err(ApiError::not_found());
    };
    i.finish()?;
    let keys = if !add && units.iter().any(|u| u == "*") {
        None
    } else {
        Some(content_keys(c, "content_units", &units).await?)
    };
    let v = if add {
        c.manage().add(&repo, keys.unwrap_or_default()).await?
    } else {
        c.manage().remove(&repo, keys).await?
    };
    modified(c, "pulpcore.app.tasks.repository.add_and_remove", &repo, v).await
}

async fn tag_modify(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let mut i = c.input(false)?;
    let digest = |i: &mut Input| -> Option<Digest> {
        let d = i.string("digest", true)?;
        match Digest::parse(&d) {
            Ok(d) => Some(d),
            Err(e) => {
                i.err("digest", e.to_string());
                None
            }
        }
    };
    let tag = |i: &mut Input| -> Option<Tag> {
        let t = i.string("tag", true)?;
        match Tag::parse(&t) {
            Ok(t) => Some(t),
            Err(e) => {
                i.err("tag", e.to_string());
                None
            }
        }
    };
    let (v, name) = match c.m.op.id {
        OpId::PushTag | OpId::RepoTag => {
            let (t, d) = (tag(&mut i), digest(&mut i));
            i.finish()?;
            let (Some(t), Some(d)) = (t, d) else {
                return Err(ApiError::not_found());
            };
            (c.manage().tag(&repo, t, d).await?, "pulp_container.app.tasks.tag_image")
        }
        OpId::PushUntag | OpId::RepoUntag => {
            let t = tag(&mut i);
            i.finish()?;
            let Some(t) = t else { return Err(ApiError::not_found()) };
            (
                c.manage().untag(&repo, t).await?,
                "pulp_container.app.tasks.untag_image",
            )
        }
        _ => {
            let d = digest(&mut i);
            i.finish()?;
            let Some(d) = d else { return Err(ApiError::not_found()) };
            (
                c.manage().remove_image(&repo, &d).await?,
                "pulp_container.app.tasks.recursive_remove_content",
            )
        }
    };
    modified(c, name, &repo, v).await
}

// ---- versions ------------------------------------------------------------------------------

async fn list_versions(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let num = |k: &str| -> Result<Option<u64>, ApiError> {
        match c.q(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::field(k, "Enter a number.")),
        }
    };
    let (eq, gt, gte, lt, lte) = (
        num("number")?,
        num("number__gt")?,
        num("number__gte")?,
        num("number__lt")?,
        num("number__lte")?,
    );
    let content = match c.q("content") {
        Some(h) if !h.is_empty() => match content_ref(h) {
            Some(id) => Some(c.manage().store().content_by_id(id).await?),
            None => return Err(ApiError::field("content", "Invalid hyperlink.")),
        },
        _ => None,
    };
    let mut items = Vec::new();
    for v in c.manage().store().versions(&repo).await? {
        let n = v.number;
        if eq.is_some_and(|x| n != x)
            || gt.is_some_and(|x| n <= x)
            || gte.is_some_and(|x| n < x)
            || lt.is_some_and(|x| n >= x)
            || lte.is_some_and(|x| n > x)
        {
            continue;
        }
        if let Some(k) = &content {
            match k {
                Some(k) if c.manage().store().contains(repo.id, n, k).await? => {}
                _ => continue,
            }
        }
        items.push(render::version(&repo, &v));
    }
    if c.q("ordering").is_some_and(|o| o == "number" || o == "pulp_created") {
        items.reverse();
    }
    c.page(items)
}

async fn read_version(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let v = c.manage().version(&repo, c.m.n.unwrap_or(u64::MAX)).await?;
    c.ok(render::version(&repo, &v))
}

async fn delete_version(c: &Ctx<'_>, kind: RepositoryKind) -> Answer {
    let repo = c.manage().repository(c.id(), kind).await?;
    let n = c.m.n.unwrap_or(u64::MAX);
    c.manage().delete_version(&repo, n).await?;
    c.done(
        "pulpcore.app.tasks.repository.delete_version",
        ResourceRef::Repository { id: repo.id, kind },
    )
    .await
}

// ---- remotes ---------------------------------------------------------------------------------

fn valid_url(u: &str) -> Result<(), &'static str> {
    let uri: http::Uri = u.parse().map_err(|_| "Enter a valid URL.")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("Enter a valid URL (http or https)."),
    }
    let auth = uri.authority().ok_or("Enter a valid URL.")?;
    if auth.as_str().contains('@') {
        return Err("The URL must not contain credentials; use the username and password fields.");
    }
    if auth.host().is_empty() {
        return Err("Enter a valid URL.");
    }
    Ok(())
}

/// Applies a create/update body to a remote; `partial` leaves absent fields alone.
fn apply_remote(c: &Ctx<'_>, r: &mut Remote, partial: bool) -> Result<(), ApiError> {
    let mut i = c.input(partial)?;
    if let Some(n) = i.string("name", true) {
        if n.len() > 255 {
            i.err("name", "Ensure this field has no more than 255 characters.");
        }
        r.name = n;
    }
    if let Some(u) = i.string("url", true) {
        if let Err(e) = valid_url(&u) {
            i.err("url", e);
        }
        r.url = u;
    }
    if let Some(u) = i.string("upstream_name", true) {
        if let Err(e) = RepoName::parse(&u) {
            i.err("upstream_name", e.to_string());
        }
        r.upstream_name = u;
    }
    let includes = i.opt_str_list("includes");
    let include_tags = i.opt_str_list("include_tags");
    let excludes = i.opt_str_list("excludes");
    let exclude_tags = i.opt_str_list("exclude_tags");
    let merge = |a: Option<Option<Vec<String>>>, b: Option<Option<Vec<String>>>| -> Option<Option<Vec<String>>> {
        match (a, b) {
            (None, None) => None,
            (a, b) => {
                let mut v: Vec<String> = a.flatten().unwrap_or_default();
                for x in b.flatten().unwrap_or_default() {
                    if !v.contains(&x) {
                        v.push(x);
                    }
                }
                Some((!v.is_empty()).then_some(v))
            }
        }
    };
    if let Some(x) = merge(includes, include_tags) {
        r.includes = x;
    }
    if let Some(x) = merge(excludes, exclude_tags) {
        r.excludes = x;
    }
    if let Err(e) = TagFilter::new(
        r.includes.as_deref().unwrap_or(&[]),
        r.excludes.as_deref().unwrap_or(&[]),
    ) {
        let field = if i.has("includes") {
            "includes"
        } else if i.has("include_tags") {
            "include_tags"
        } else if i.has("excludes") {
            "excludes"
        } else {
            "exclude_tags"
        };
        i.err(field, e.to_string());
    }
    if let Some(p) = i.string("policy", false) {
        match Policy::parse(&p) {
            Some(p) => r.policy = p,
            None => i.err("policy", format!("\"{p}\" is not a valid choice.")),
        }
    }
    if let Some(s) = i.opt_string("sigstore", true) {
        if let Some(u) = &s {
            if let Err(e) = valid_url(u) {
                i.err("sigstore", e);
            }
        }
        r.sigstore = s;
    }
    macro_rules! opt {
        ($field:ident, $getter:expr) => {
            if let Some(v) = $getter {
                r.$field = v;
            }
        };
    }
    opt!(username, i.opt_string("username", true));
    opt!(password, i.opt_string("password", true));
    opt!(ca_cert, i.opt_string("ca_cert", true));
    opt!(client_cert, i.opt_string("client_cert", true));
    opt!(client_key, i.opt_string("client_key", true));
    opt!(proxy_url, i.opt_string("proxy_url", true));
    opt!(proxy_username, i.opt_string("proxy_username", true));
    opt!(proxy_password, i.opt_string("proxy_password", true));
    opt!(download_concurrency, i.opt_uint("download_concurrency", 1));
    opt!(rate_limit, i.opt_uint("rate_limit", 0));
    opt!(max_retries, i.opt_uint("max_retries", 0));
    opt!(total_timeout, i.opt_float("total_timeout"));
    opt!(connect_timeout, i.opt_float("connect_timeout"));
    opt!(sock_connect_timeout, i.opt_float("sock_connect_timeout"));
    opt!(sock_read_timeout, i.opt_float("sock_read_timeout"));
    if let Some(p) = &r.proxy_url {
        if let Err(e) = valid_url(p) {
            i.err("proxy_url", e);
        }
    }
    if let Some(b) = i.boolean("tls_validation") {
        r.tls_validation = b;
    }
    if let Some(h) = i.raw("headers") {
        match h {
            Value::Null => r.headers = None,
            Value::Array(_) => r.headers = Some(h),
            _ => i.err("headers", "Expected a list of items."),
        }
    }
    if let Some(l) = i.labels("pulp_labels") {
        r.pulp_labels = l;
    }
    i.finish()
}

async fn list_remotes(c: &Ctx<'_>) -> Answer {
    let items = c
        .manage()
        .store()
        .remotes()
        .await?
        .into_iter()
        .filter(|r| {
            c.by_name(
                &r.name,
                &render::remote_href(r.id),
                &format!("prn:container.containerremote:{}", r.id),
            )
        })
        .map(|r| render::remote(&r))
        .collect();
    c.page(items)
}

async fn create_remote(c: &Ctx<'_>) -> Answer {
    let mut r = Remote::new("", "", "");
    apply_remote(c, &mut r, false)?;
    let r = c.manage().create_remote(r).await?;
    Ok(json_response(StatusCode::CREATED, &render::remote(&r)))
}

async fn update_remote(c: &Ctx<'_>, partial: bool) -> Answer {
    let id = c.id();
    let mut probe = c.manage().remote(id).await?;
    apply_remote(c, &mut probe, partial)?;
    c.manage()
        .update_remote(id, |r| {
            let (created, rid) = (r.created, r.id);
            *r = probe.clone();
            r.created = created;
            r.id = rid;
            Ok(())
        })
        .await?;
    c.done("pulpcore.app.tasks.base.general_update", ResourceRef::Remote { id })
        .await
}

// ---- distributions -----------------------------------------------------------------------------

async fn render_dist(c: &Ctx<'_>, d: &crate::store::Distribution) -> Result<Value, ApiError> {
    let kind = match d.repository {
        Some(id) => c.manage().store().repository(id).await?.map(|r| r.kind),
        None => None,
    };
    Ok(render::distribution(d, kind, &c.host))
}

async fn list_distributions(c: &Ctx<'_>) -> Answer {
    let mut items = Vec::new();
    let repo_filter = c.q("repository").filter(|s| !s.is_empty());
    for d in c.manage().store().distributions(None, usize::MAX).await? {
        let v = render_dist(c, &d).await?;
        if !c.by_name(&d.name, &render::dist_href(d.id), v["prn"].as_str().unwrap_or("")) {
            continue;
        }
        let bp = d.base_path.as_str();
        if c.q("base_path").is_some_and(|x| x != bp)
            || c.q_list("base_path__in").is_some_and(|xs| !xs.iter().any(|x| x == bp))
            || c.q("base_path__contains").is_some_and(|x| !bp.contains(x))
            || c.q("base_path__icontains")
                .is_some_and(|x| !bp.to_lowercase().contains(&x.to_lowercase()))
        {
            continue;
        }
        if let Some(r) = repo_filter {
            if v["repository"].as_str().is_none_or(|h| !r.ends_with(h)) {
                continue;
            }
        }
        items.push(v);
    }
    c.page(items)
}

/// Reads a distribution body into a spec, starting from `before` for partial updates.
async fn dist_spec(
    c: &Ctx<'_>,
    before: Option<&crate::store::Distribution>,
    partial: bool,
) -> Result<DistributionSpec, ApiError> {
    let mut i = c.input(partial)?;
    let name = i.string("name", true);
    let base_path = i.string("base_path", true);
    let repository = i.opt_string("repository", true);
    let version = i.opt_string("repository_version", true);
    let private = i.boolean("private");
    let description = i.opt_string("description", false);
    let labels = i.labels("pulp_labels");
    if let Some(Some(_)) = i.opt_string("remote", true) {
        i.err("remote", "Pull-through remotes are not supported.");
    }
    let base_path = match base_path {
        Some(bp) => match RepoName::parse(&bp) {
            Ok(p) => Some(p),
            Err(_) => {
                i.err(
                    "base_path",
                    "Each '/'-separated part must be lowercase letters and digits, separated by '.', '_', '__' or '-'; at most 255 characters.",
                );
                None
            }
        },
        None => None,
    };
    if matches!((&repository, &version), (Some(Some(_)), Some(Some(_)))) {
        i.err(
            "non_field_errors",
            "Only one of the attributes 'repository' and 'repository_version' may be used simultaneously.",
        );
    }
    let mut serves = None;
    if let Some(r) = &repository {
        serves = Some(match r {
            None => Serves::Nothing,
            Some(h) => {
                let m = ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/", h)
                    .or_else(|| ops::parse_href("/pulp/api/v3/repositories/container/container-push/{id}/", h));
                match m {
                    Some((Some(id), _)) => Serves::Latest(id),
                    _ => {
                        i.err("repository", "Invalid hyperlink - No URL match.");
                        Serves::Nothing
                    }
                }
            }
        });
    }
    if let Some(v) = &version {
        match v {
            None => {
                if serves.is_none() {
                    serves = Some(Serves::Nothing);
                }
            }
            Some(h) => {
                let m = ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/versions/{n}/", h).or_else(
                    || {
                        ops::parse_href(
                            "/pulp/api/v3/repositories/container/container-push/{id}/versions/{n}/",
                            h,
                        )
                    },
                );
                match m {
                    Some((Some(id), Some(n))) => serves = Some(Serves::Version(id, n)),
                    _ => i.err("repository_version", "Invalid hyperlink - No URL match."),
                }
            }
        }
    }
    i.finish()?;
    let keep = |d: &crate::store::Distribution| match (d.repository, d.version) {
        (Some(id), None) => Serves::Latest(id),
        (Some(id), Some(n)) => Serves::Version(id, n),
        _ => Serves::Nothing,
    };
    Ok(DistributionSpec {
        name: name.or_else(|| before.map(|b| b.name.clone())).unwrap_or_default(),
        base_path: match base_path.or_else(|| before.map(|b| b.base_path.clone())) {
            Some(p) => p,
            None => return Err(ApiError::field("base_path", input::REQUIRED)),
        },
        serves: serves
            .or_else(|| if partial { before.map(keep) } else { None })
            .unwrap_or(Serves::Nothing),
        private: private
            .or_else(|| if partial { before.map(|b| b.private) } else { None })
            .unwrap_or(false),
        description: match description {
            Some(d) => d,
            None if partial => before.and_then(|b| b.description.clone()),
            None => None,
        },
        pulp_labels: labels
            .or_else(|| {
                if partial {
                    before.map(|b| b.pulp_labels.clone())
                } else {
                    None
                }
            })
            .unwrap_or_default(),
    })
}

async fn create_distribution(c: &Ctx<'_>) -> Answer {
    let spec = dist_spec(c, None, false).await?;
    let d = c.manage().create_distribution(spec).await?;
    let r = ResourceRef::Distribution { id: d.id };
    let t = c
        .manage()
        .completed_task(
            "pulpcore.app.tasks.base.general_create",
            vec![],
            vec![r.clone()],
            Some(r),
        )
        .await?;
    c.task(&t)
}

async fn update_distribution(c: &Ctx<'_>, partial: bool) -> Answer {
    let id = c.id();
    let before = c.manage().distribution(id).await?;
    let spec = dist_spec(c, Some(&before), partial).await?;
    c.manage().update_distribution(id, |_| Ok(spec)).await?;
    c.done(
        "pulpcore.app.tasks.base.general_update",
        ResourceRef::Distribution { id },
    )
    .await
}

// ---- tasks ---------------------------------------------------------------------------------

fn resource_matches(c: &Ctx<'_>, list: &[ResourceRef], key: &str) -> bool {
    let Some(wanted) = c.q_any(key) else {
        return true;
    };
    let hrefs: Vec<String> = list.iter().map(render::resource_href).collect();
    wanted.iter().filter(|w| !w.is_empty()).any(|w| {
        hrefs
            .iter()
            .any(|h| w.ends_with(h.as_str()) || w.contains(&h[h.len().saturating_sub(37)..h.len() - 1]))
    }) || wanted.iter().all(|w| w.is_empty())
}

async fn list_tasks(c: &Ctx<'_>) -> Answer {
    let states: Option<Vec<String>> = c.q_any("state");
    let mut items = Vec::new();
    for t in c.manage().store().tasks().await? {
        if states
            .as_ref()
            .is_some_and(|s| !s.iter().any(|x| x == t.state.as_str()))
        {
            continue;
        }
        if !c.by_name(&t.name, &render::task_href(t.id), &format!("prn:core.task:{}", t.id)) {
            continue;
        }
        let all: Vec<ResourceRef> = t
            .reserved_resources
            .iter()
            .chain(t.shared_resources.iter())
            .cloned()
            .collect();
        if !resource_matches(c, &all, "reserved_resources")
            || !resource_matches(c, &t.reserved_resources, "exclusive_resources")
            || !resource_matches(c, &t.shared_resources, "shared_resources")
            || !resource_matches(c, &t.created_resources, "created_resources")
        {
            continue;
        }
        if c.q("logging_cid").is_some_and(|x| x != t.logging_cid) {
            continue;
        }
        items.push(render::task(&t));
    }
    c.page(items)
}

async fn cancel_task(c: &Ctx<'_>) -> Answer {
    let mut i = c.input(false)?;
    let state = i.string("state", true);
    i.finish()?;
    if state.as_deref() != Some("canceled") {
        return Err(ApiError::field("state", "The only acceptable value is 'canceled'."));
    }
    let t = match c.manage().cancel_task(c.id()).await {
        Err(ManageError::Field { message, .. }) => return Err(ApiError::detail(409, message)),
        other => other?,
    };
    c.ok(render::task(&t))
}

// ---- content ---------------------------------------------------------------------------------

/// A repository version named by href (either repository type).
async fn version_by_href(c: &Ctx<'_>, field: &str, href: &str) -> Result<(Repository, u64), ApiError> {
    let m = ops::parse_href("/pulp/api/v3/repositories/container/container/{id}/versions/{n}/", href).or_else(|| {
        ops::parse_href(
            "/pulp/api/v3/repositories/container/container-push/{id}/versions/{n}/",
            href,
        )
    });
    let Some((Some(id), Some(n))) = m else {
        return Err(ApiError::field(field, "Invalid hyperlink - No URL match."));
    };
    let repo = c
        .manage()
        .store()
        .repository(id)
        .await?
        .ok_or_else(|| ApiError::field(field, "Invalid hyperlink - Object does not exist."))?;
    c.manage()
        .store()
        .version(&repo, n)
        .await?
        .ok_or_else(|| ApiError::field(field, "Invalid hyperlink - Object does not exist."))?;
    Ok((repo, n))
}

async fn render_content(c: &Ctx<'_>, key: &ContentKey) -> Result<Value, ApiError> {
    let store = c.manage().store();
    Ok(match key {
        ContentKey::Blob(d) => {
            let rec = store.blob(d).await?;
            render::blob(key, rec.as_ref().map(|r| &r.created))
        }
        ContentKey::Manifest(d) => render::manifest(key, store.manifest(d).await?.as_ref()),
        ContentKey::Tag { .. } => render::tag(key),
        ContentKey::Signature(_) => render::signature(key),
    })
}

async fn list_content(c: &Ctx<'_>, ty: ContentType) -> Answer {
    let store = c.manage().store();
    let mut keys: Option<Vec<ContentKey>> = None;
    if let Some(h) = c.q("repository_version").filter(|h| !h.is_empty()) {
        let (repo, n) = version_by_href(c, "repository_version", h).await?;
        keys = Some(store.content(repo.id, n, ty, None, usize::MAX).await?);
    }
    for (field, added) in [
        ("repository_version_added", true),
        ("repository_version_removed", false),
    ] {
        if let Some(h) = c.q(field).filter(|h| !h.is_empty()) {
            let (repo, n) = version_by_href(c, field, h).await?;
            let changed: Vec<ContentKey> = store
                .changes(repo.id, n, added)
                .await?
                .into_iter()
                .filter(|k| k.content_type() == ty)
                .collect();
            keys = Some(match keys {
                Some(k) => k.into_iter().filter(|x| changed.contains(x)).collect(),
                None => changed,
            });
        }
    }
    let keys = match keys {
        Some(k) => k,
        None => store.all_content(ty).await?,
    };
    let digests: Option<Vec<String>> = c.q_any("digest");
    let names: Option<Vec<String>> = c.q_any("name");
    let media: Option<Vec<String>> = c.q_list("media_type");
    let hrefs = c.q_list("pulp_href__in");
    let mut items = Vec::new();
    for k in keys {
        let digest = match &k {
            ContentKey::Blob(d) | ContentKey::Manifest(d) | ContentKey::Signature(d) => Some(d.as_str()),
            ContentKey::Tag { .. } => None,
        };
        if let Some(ds) = &digests {
            if !digest.is_some_and(|d| ds.iter().any(|x| x == d)) {
                continue;
            }
        }
        if let (Some(ns), ContentKey::Tag { name, .. }) = (&names, &k) {
            if !ns.iter().any(|x| x == name.as_str()) {
                continue;
            }
        }
        if let Some(hs) = &hrefs {
            let h = render::content_href(&k);
            if !hs.iter().any(|x| x.ends_with(&h)) {
                continue;
            }
        }
        let v = render_content(c, &k).await?;
        if let Some(ms) = &media {
            if !v["media_type"].as_str().is_some_and(|m| ms.iter().any(|x| x == m)) {
                continue;
            }
        }
        items.push(v);
    }
    c.page(items)
}

async fn read_content(c: &Ctx<'_>, ty: ContentType) -> Answer {
    let key = c
        .manage()
        .store()
        .content_by_id(c.id())
        .await?
        .filter(|k| k.content_type() == ty)
        .ok_or_else(ApiError::not_found)?;
    c.ok(render_content(c, &key).await?)
}

fn status(c: &Ctx<'_>) -> Answer {
    c.ok(json!({
        "versions": [
            {"component": "core", "version": CORE_VERSION, "package": "berth", "module": "berth", "domain_compatible": false},
            {"component": "container", "version": CONTAINER_VERSION, "package": "berth", "module": "berth", "domain_compatible": false}
        ],
        "online_workers": [{"name": "berth", "last_heartbeat": render::ts(&Utc::now())}],
        "online_api_apps": [{"name": "berth", "last_heartbeat": render::ts(&Utc::now())}],
        "online_content_apps": [{"name": "berth", "last_heartbeat": render::ts(&Utc::now())}],
        "database_connection": {"connected": true},
        "redis_connection": {"connected": false},
        "storage": null,
        "content_settings": {"content_origin": c.base_url, "content_path_prefix": "/pulp/content/"},
        "domain_enabled": false
    }))
}

/// A task's state, for tests and callers outside the API.
pub fn is_final(t: &Task) -> bool {
    t.state != TaskState::Waiting && t.state != TaskState::Running && t.state != TaskState::Canceling
}

//! The Pulp-compatible management API under `/pulp/api/v3/`, enough for the unmodified
//! `pulp` CLI: every operation is in [`ops::OPS`], which both routes requests and generates the
//! OpenAPI document. This module holds the router, the request context ([`Ctx`]: query
//! parameters, paging, field selection), authentication and the dispatch to one module per
//! resource; each handler there parses, makes one service call and renders.
//!
//! Wire rules the CLI depends on: `Content-Type: application/json` exactly, the declared
//! status codes (201 for repository and remote create, 202 `{"task": href}` for asynchronous
//! operations), absolute `next`/`previous` links, a `Correlation-ID` on every answer (the
//! caller's when it is a UUID, else a fresh one, as Pulp's django-guid does), no redirects.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`, over the services only (never the store).

mod accounts;
mod content;
mod distributions;
pub(crate) mod errors;
pub mod input;
mod lookups;
mod namespaces;
pub mod openapi;
pub mod ops;
mod ops_accounts;
mod ops_pull_through;
mod ops_schedules;
pub mod params;
mod pull_through;
mod remotes;
pub mod render;
mod repositories;
mod schedules;
mod system;
mod tasks;
mod versions;
mod workers;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use self::errors::json_response;
pub use self::errors::ApiError;
use self::input::Input;
use self::ops::{Matched, OpId, Route};
use crate::domain::LabelSelect;
use crate::services::{
    Accounts, Act, Catalog, Identity, Login, Manage, ManageError, NameFilter, Scope, Target, TimeRange, Users,
};
use crate::store::{Listing, Page, RepositoryKind, ResourceRef, Task, TaskState, User};

/// The versions the OpenAPI document claims (the CLI checks `core >= 3.49`, `container >= 2.19`).
pub const CORE_VERSION: &str = "3.85.0";
pub const CONTAINER_VERSION: &str = "2.26.0";
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct PulpState {
    pub manage: Arc<Manage>,
    pub users: Arc<Users>,
    pub accounts: Arc<Accounts>,
    /// The URL clients use (for absolute links); derived from `Host` when unset.
    pub public_url: Option<String>,
}

type Answer = Result<Response, ApiError>;

pub fn router(state: PulpState) -> Router {
    Router::new()
        .route("/pulp/api/v3/docs/api.json", get(doc))
        .route("/pulp/api/v3/{*rest}", any(api))
        .with_state(state)
        .layer(axum::middleware::from_fn(correlation_id))
}

/// The `Correlation-ID` header every answer carries: the request's when it is a UUID (32 hex
/// digits, with or without dashes), as sent; a fresh one otherwise.
async fn correlation_id(req: Request, next: axum::middleware::Next) -> Response {
    let id = req
        .headers()
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| matches!(v.len(), 32 | 36) && Uuid::try_parse(v).is_ok())
        .map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_owned);
    let mut resp = next.run(req).await;
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert(CORRELATION_ID, v);
    }
    resp
}

const CORRELATION_ID: &str = "correlation-id";

async fn doc() -> Response {
    json_response(StatusCode::OK, &openapi::openapi(CORE_VERSION, CONTAINER_VERSION))
}

async fn api(State(s): State<PulpState>, req: Request) -> Response {
    match handle(&s, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
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
    /// Who is calling (anonymous for public operations).
    who: Identity,
    /// What the caller's lists show (list operations only).
    scope: Option<Scope>,
}

impl Ctx<'_> {
    fn manage(&self) -> &Manage {
        &self.s.manage
    }

    fn accounts(&self) -> &Accounts {
        &self.s.accounts
    }

    fn catalog(&self) -> Catalog<'_> {
        self.s.manage.catalog(self.scope.as_ref())
    }

    fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    /// A parameter that was sent with a non-empty value.
    fn q_set(&self, k: &str) -> Option<&str> {
        self.q(k).filter(|v| !v.is_empty())
    }

    fn q_owned(&self, k: &str) -> Option<String> {
        self.q(k).map(str::to_owned)
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

    /// The page `limit` and `offset` ask for (LimitOffset pagination: 100 by default, at
    /// most 1,000).
    fn paging(&self) -> Result<Page, ApiError> {
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
        Ok(Page { limit, offset })
    }

    /// One page of a list with absolute links.
    fn page(&self, page: Page, listing: Listing<Value>) -> Answer {
        let Page { limit, offset } = page;
        let count = listing.count;
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
        let next = (offset.saturating_add(limit) < count).then(|| link(offset + limit));
        let previous = (offset > 0).then(|| link(offset.saturating_sub(limit)));
        let results: Vec<Value> = listing.items.into_iter().map(|v| self.select_fields(v)).collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"count": count, "next": next, "previous": previous, "results": results}),
        ))
    }

    /// The common name filters, with `pulp_href__in` and `prn__in` resolved to ids by the
    /// resource's `href` and `prn` spellings.
    fn names(&self, href: impl Fn(Uuid) -> String, prn: impl Fn(Uuid) -> String) -> NameFilter {
        NameFilter {
            name: self.q_owned("name"),
            name_in: self.q_list("name__in"),
            name_contains: self.q_owned("name__contains"),
            name_icontains: self.q_owned("name__icontains"),
            name_startswith: self.q_owned("name__startswith"),
            ids: self.q_list("pulp_href__in").map(|hs| ids_by_href(&hs, href)),
            also_ids: self.q_list("prn__in").map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        let id = Uuid::parse_str(p.rsplit(':').next()?).ok()?;
                        (prn(id) == *p).then_some(id)
                    })
                    .collect()
            }),
            ..NameFilter::default()
        }
    }

    /// `pulp_label_select`, parsed.
    fn labels(&self) -> Result<Option<LabelSelect>, ApiError> {
        self.q_set("pulp_label_select")
            .map(|s| LabelSelect::parse(s).map_err(|e| ApiError::field("pulp_label_select", e)))
            .transpose()
    }

    /// A time parameter as django-filter's `IsoDateTimeFilter` reads it: ISO 8601, with an
    /// offset or in UTC without one.
    fn time(&self, k: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = self.q_set(k) else { return Ok(None) };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| ApiError::field(k, "Enter a valid date/time."))
    }

    /// The range `{prefix}__gte` and `{prefix}__lte` give.
    fn time_range(&self, prefix: &str) -> Result<TimeRange, ApiError> {
        Ok(TimeRange {
            from: self.time(&format!("{prefix}__gte"))?,
            to: self.time(&format!("{prefix}__lte"))?,
        })
    }

    /// A boolean parameter as django-filter's `BooleanFilter` reads it.
    fn boolean(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.q_set(k) {
            None => Ok(None),
            Some("true" | "True" | "1") => Ok(Some(true)),
            Some("false" | "False" | "0") => Ok(Some(false)),
            Some(_) => Err(ApiError::field(k, "Select a valid choice.")),
        }
    }
}

/// The id in each value that ends with the href `href` makes of it.
fn ids_by_href(values: &[String], href: impl Fn(Uuid) -> String) -> Vec<Uuid> {
    values.iter().filter_map(|v| id_by_href(v, &href)).collect()
}

/// The id of a value that ends with the href `href` makes of it (`<…>/<uuid>/`).
fn id_by_href(v: &str, href: impl Fn(Uuid) -> String) -> Option<Uuid> {
    let tail = v.get(v.len().checked_sub(37)?..v.len() - 1)?;
    let id = Uuid::parse_str(tail).ok()?;
    v.ends_with(&href(id)).then_some(id)
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
    let who = if m.op.public {
        Identity::anonymous()
    } else {
        let user = authenticate(&s.users, &parts.headers).await?;
        s.accounts
            .login_identity(&user)
            .await?
            .ok_or(ApiError::Unauthenticated("Invalid username/password."))?
    };
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
    let mut who = who;
    if let Some((target, act)) = gate(&m) {
        match s.manage.authorize(&who, target, act).await {
            Err(ManageError::NotFound | ManageError::Forbidden) if who.is_authenticated() && !who.admin => {
                // roles given moments ago through another process count at once
                who = s.accounts.refreshed(&who).await?.ok_or(ApiError::not_found())?;
                s.manage.authorize(&who, target, act).await?;
            }
            other => other?,
        }
    }
    let scope = match m.op.id {
        OpId::RepoList
        | OpId::PushList
        | OpId::RemoteList
        | OpId::DistList
        | OpId::PtRemoteList
        | OpId::PtDistList
        | OpId::TaskList
        | OpId::NamespaceList
        | OpId::BlobList
        | OpId::ManifestList
        | OpId::TagList
        | OpId::SignatureList
        | OpId::ContentList => Some(s.manage.scope(&who).await?),
        _ => None,
    };
    if m.op.id == OpId::OrphansCleanup && !who.admin {
        return Err(ApiError::forbidden());
    }
    let ctx = Ctx {
        s,
        m,
        query,
        body,
        base_url,
        host,
        path,
        who: who.clone(),
        scope,
    };
    crate::services::acting::with_actor(Arc::new(who), dispatch(&ctx)).await
}

/// What an operation on one object needs of its caller, checked before it runs (creates,
/// lists and the accounts operations check inside their service calls).
fn gate(m: &Matched) -> Option<(Target, Act)> {
    use crate::store::RepositoryKind::{Mirror, Push};
    use OpId::*;
    let id = m.id?;
    let (target, act) = match m.op.id {
        RepoRead | RepoVersionsList | RepoVersionsRead => (Target::Repository(id, Mirror), Act::View),
        RepoPartialUpdate | RepoUpdate => (Target::Repository(id, Mirror), Act::Change),
        RepoDelete => (Target::Repository(id, Mirror), Act::Delete),
        RepoCopyTags | RepoCopyManifests | RepoRemove | RepoAdd | RepoTag | RepoUntag => {
            (Target::Repository(id, Mirror), Act::Modify)
        }
        RepoVersionsDelete => (Target::Repository(id, Mirror), Act::DeleteVersions),
        RepoVersionsRepair => (Target::Repository(id, Mirror), Act::Repair),
        PushRead | PushVersionsList | PushVersionsRead => (Target::Repository(id, Push), Act::View),
        PushPartialUpdate | PushUpdate => (Target::Repository(id, Push), Act::Change),
        PushDelete => (Target::Repository(id, Push), Act::Delete),
        PushTag | PushUntag | PushRemoveImage | PushVersionsDelete => (Target::Repository(id, Push), Act::Modify),
        PushVersionsRepair => (Target::Repository(id, Push), Act::Repair),
        RemoteRead | PtRemoteRead => (Target::Remote(id), Act::View),
        RemotePartialUpdate | RemoteUpdate | PtRemotePartialUpdate | PtRemoteUpdate => {
            (Target::Remote(id), Act::Change)
        }
        RemoteDelete | PtRemoteDelete => (Target::Remote(id), Act::Delete),
        DistRead | PtDistRead => (Target::Distribution(id), Act::View),
        DistPartialUpdate | DistUpdate => (Target::Distribution(id), Act::Change),
        DistDelete => (Target::Distribution(id), Act::Delete),
        TaskRead => (Target::Task(id), Act::View),
        TaskCancel => (Target::Task(id), Act::Change),
        TaskDelete => (Target::Task(id), Act::Delete),
        NamespaceRead => (Target::Namespace(id), Act::View),
        NamespaceDelete => (Target::Namespace(id), Act::Delete),
        // checked by their service calls: syncs (the remote is in the body), distribution
        // changes (the repository served), and role actions
        _ => return None,
    };
    Some((target, act))
}

/// `204 No Content`.
fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

async fn dispatch(c: &Ctx<'_>) -> Answer {
    use crate::domain::ContentType::{Blob, Manifest, Signature, Tag};
    use crate::store::RemoteKind::{Container, PullThrough};
    use OpId::*;
    use RepositoryKind::{Mirror, Push};
    match c.m.op.id {
        RepoList => repositories::list(c, Mirror).await,
        PushList => repositories::list(c, Push).await,
        RepoCreate => repositories::create(c).await,
        RepoRead => repositories::read(c, Mirror).await,
        PushRead => repositories::read(c, Push).await,
        RepoPartialUpdate => repositories::update(c, Mirror, true).await,
        RepoUpdate => repositories::update(c, Mirror, false).await,
        PushPartialUpdate => repositories::update(c, Push, true).await,
        PushUpdate => repositories::update(c, Push, false).await,
        RepoDelete => repositories::delete(c, Mirror).await,
        PushDelete => repositories::delete(c, Push).await,
        RepoSync => repositories::sync(c).await,
        RepoCopyTags => repositories::copy(c, true).await,
        RepoCopyManifests => repositories::copy(c, false).await,
        RepoRemove => repositories::modify(c, false).await,
        RepoAdd => repositories::modify(c, true).await,
        RepoTag | RepoUntag => repositories::tag_modify(c, Mirror).await,
        PushTag | PushUntag | PushRemoveImage => repositories::tag_modify(c, Push).await,
        RepoVersionsList => versions::list(c, Mirror).await,
        PushVersionsList => versions::list(c, Push).await,
        RepoVersionsRead => versions::read(c, Mirror).await,
        PushVersionsRead => versions::read(c, Push).await,
        RepoVersionsDelete => versions::delete(c, Mirror).await,
        PushVersionsDelete => versions::delete(c, Push).await,
        RepoVersionsRepair => versions::repair(c, Mirror).await,
        PushVersionsRepair => versions::repair(c, Push).await,
        RemoteList => remotes::list(c, Container).await,
        RemoteCreate => remotes::create(c, Container).await,
        RemoteRead => remotes::read(c, Container).await,
        RemotePartialUpdate => remotes::update(c, Container, true).await,
        RemoteUpdate => remotes::update(c, Container, false).await,
        RemoteDelete => remotes::delete(c, Container).await,
        PtRemoteList => remotes::list(c, PullThrough).await,
        PtRemoteCreate => remotes::create(c, PullThrough).await,
        PtRemoteRead => remotes::read(c, PullThrough).await,
        PtRemotePartialUpdate => remotes::update(c, PullThrough, true).await,
        PtRemoteUpdate => remotes::update(c, PullThrough, false).await,
        PtRemoteDelete => remotes::delete(c, PullThrough).await,
        PtDistList => pull_through::list(c).await,
        PtDistCreate => pull_through::create(c).await,
        PtDistRead => pull_through::read(c).await,
        PtDistPartialUpdate => pull_through::update(c, true).await,
        PtDistUpdate => pull_through::update(c, false).await,
        PtDistDelete => pull_through::delete(c).await,
        DistList => distributions::list(c).await,
        DistCreate => distributions::create(c).await,
        DistRead => distributions::read(c).await,
        DistPartialUpdate => distributions::update(c, true).await,
        DistUpdate => distributions::update(c, false).await,
        DistDelete => distributions::delete(c).await,
        TaskList => tasks::list(c).await,
        TaskRead => tasks::read(c).await,
        TaskCancel => tasks::cancel(c).await,
        TaskDelete => tasks::delete(c).await,
        BlobList => content::list(c, Blob).await,
        ManifestList => content::list(c, Manifest).await,
        TagList => content::list(c, Tag).await,
        SignatureList => content::list(c, Signature).await,
        BlobRead => content::read(c, Blob).await,
        ManifestRead => content::read(c, Manifest).await,
        TagRead => content::read(c, Tag).await,
        SignatureRead => content::read(c, Signature).await,
        ContentList => content::list_any(c).await,
        OrphansCleanup => system::orphans_cleanup(c).await,
        Status => system::status(c).await,
        NamespaceList => namespaces::list(c).await,
        NamespaceCreate => namespaces::create(c).await,
        NamespaceRead => namespaces::read(c).await,
        NamespaceDelete => namespaces::delete(c).await,
        WorkerList => workers::list(c).await,
        WorkerRead => workers::read(c).await,
        UserList => accounts::user_list(c).await,
        UserCreate => accounts::user_create(c).await,
        UserRead => accounts::user_read(c).await,
        UserPartialUpdate => accounts::user_update(c, true).await,
        UserUpdate => accounts::user_update(c, false).await,
        UserDelete => accounts::user_delete(c).await,
        UserRoleList => accounts::assignment_list(c, false).await,
        UserRoleCreate => accounts::assignment_create(c, false).await,
        UserRoleRead => accounts::assignment_read(c, false).await,
        UserRoleDelete => accounts::assignment_delete(c, false).await,
        GroupList => accounts::group_list(c).await,
        GroupCreate => accounts::group_create(c).await,
        GroupRead => accounts::group_read(c).await,
        GroupPartialUpdate => accounts::group_update(c, true).await,
        GroupUpdate => accounts::group_update(c, false).await,
        GroupDelete => accounts::group_delete(c).await,
        GroupUserList => accounts::group_user_list(c).await,
        GroupUserCreate => accounts::group_user_add(c).await,
        GroupUserDelete => accounts::group_user_remove(c).await,
        GroupRoleList => accounts::assignment_list(c, true).await,
        GroupRoleCreate => accounts::assignment_create(c, true).await,
        GroupRoleRead => accounts::assignment_read(c, true).await,
        GroupRoleDelete => accounts::assignment_delete(c, true).await,
        ScheduleList => schedules::list(c).await,
        ScheduleCreate => schedules::create(c).await,
        ScheduleRead => schedules::read(c).await,
        SchedulePartialUpdate => schedules::update(c, true).await,
        ScheduleUpdate => schedules::update(c, false).await,
        ScheduleDelete => schedules::delete(c).await,
        RoleList => accounts::role_list(c).await,
        RoleRead => accounts::role_read(c).await,
        Roles(op, kind) => accounts::object_roles(c, op, kind).await,
    }
}

/// A task's state, for tests and callers outside the API.
pub fn is_final(t: &Task) -> bool {
    t.state != TaskState::Waiting && t.state != TaskState::Running && t.state != TaskState::Canceling
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_by_href_take_only_values_ending_with_the_href() {
        let id = Uuid::new_v4();
        let href = |id: Uuid| render::remote_href(id);
        let given = [
            format!("http://h{}", render::remote_href(id)),
            render::dist_href(Uuid::new_v4()),
            "x".into(),
            String::new(),
        ];
        assert_eq!(ids_by_href(&given, href), vec![id]);
    }
}

//! Management API errors, answered the way Pulp (Django REST framework) answers, and the
//! words for every refusal the services report: the only place these spellings live.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::domain::url_policy::Refusal;
use crate::services::{Invalid, ManageError, Who};

/// A management API error.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with `{"field": ["message", …]}`.
    Fields(BTreeMap<String, Vec<String>>),
    /// 400 with `["message", …]`: a refusal naming no field (a view's `ValidationError`).
    List(Vec<String>),
    /// Any status with this body.
    Body(StatusCode, Value),
    /// Any status with `{"detail": "…"}`.
    Detail(StatusCode, String),
    Unauthenticated(&'static str),
    /// 429 with `Retry-After` (seconds) and DRF's throttling `detail`.
    Throttled(u64),
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

pub const NO_URL_MATCH: &str = "Invalid hyperlink - No URL match.";

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

    pub fn forbidden() -> Self {
        ApiError::detail(403, "You do not have permission to perform this action.")
    }

    pub fn not_found() -> Self {
        ApiError::detail(404, "Not found.")
    }
}

/// The words for a refused value.
pub fn message(reason: &Invalid) -> String {
    match reason {
        Invalid::Unique => "This field must be unique.".into(),
        Invalid::NoObject => "Invalid hyperlink - Object does not exist.".into(),
        Invalid::NoObjectAt(h) => format!("Invalid hyperlink - Object does not exist: {h}"),
        Invalid::NoMatch => NO_URL_MATCH.into(),
        Invalid::VersionProtected => "The repository version cannot be deleted because it (or its publications) are \
                                      currently being used to distribute content. Please update the necessary \
                                      distributions first."
            .into(),
        Invalid::PullThroughRemote => {
            "A pull-through remote cannot be used to sync a repository; use a container remote.".into()
        }
        Invalid::BasePathOverlaps(d) => format!("Overlaps with existing distribution '{d}'"),
        Invalid::ManifestNotInRepository => "A manifest with this digest is not in the repository.".into(),
        Invalid::TagNotInRepository => "This tag is not in the repository.".into(),
        Invalid::ManifestNotStored(d) => format!("Manifest {d} is not stored."),
        Invalid::Url(Refusal::Invalid(_) | Refusal::NoHost) | Invalid::NotUrl => "Enter a valid URL.".into(),
        Invalid::Url(Refusal::Scheme(_)) | Invalid::NotHttpUrl => "Enter a valid URL (http or https).".into(),
        Invalid::Url(e) => format!("{e}."),
        Invalid::UrlCredentials => "The URL must not contain credentials; use the username and password fields.".into(),
        Invalid::TaskFinished(state) => format!("Task is already {} and cannot be canceled.", state.as_str()),
        Invalid::TaskUnfinished => "Only finished tasks can be deleted.".into(),
        Invalid::NoRole(r) => format!("Object with name={r} does not exist."),
        Invalid::NoUser(u) => format!("Object with username={u} does not exist."),
        Invalid::NoGroup(g) => format!("Object with name={g} does not exist."),
        Invalid::RoleNotForObject(Some(r)) => format!("The role '{r}' does not carry any permission for that object."),
        Invalid::RoleNotForObject(None) => "The role does not contain any permission for that object.".into(),
        Invalid::RoleAssigned(w) => format!("The role is already assigned to {}.", who(w)),
        Invalid::RoleNotAssigned(w) => format!("The role is not assigned to {}.", who(w)),
        Invalid::PasswordTooShort(n) => {
            format!("This password is too short. It must contain at least {n} characters.")
        }
        Invalid::PasswordLikeUsername => "The password is too similar to the username.".into(),
        Invalid::PasswordNumeric => "This password is entirely numeric.".into(),
        Invalid::Message(m) => m.clone(),
    }
}

fn who(w: &Who) -> String {
    match w {
        Who::ThisUser => "this user".into(),
        Who::ThisGroup => "this group".into(),
        Who::User(u) => format!("user '{u}'"),
        Who::Group(g) => format!("group '{g}'"),
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::Field { field, reason } => ApiError::field(field, message(&reason)),
            ManageError::Refused(Invalid::NoUser(u)) => ApiError::List(vec![format!("Could not find user {u}")]),
            ManageError::Refused(reason) => ApiError::List(vec![message(&reason)]),
            ManageError::NonField(reasons) => {
                let mut m = BTreeMap::new();
                m.insert("non_field_errors".to_owned(), reasons.iter().map(message).collect());
                ApiError::Fields(m)
            }
            ManageError::FieldItem { field, index, reason } => ApiError::Body(
                StatusCode::BAD_REQUEST,
                json!({ field: { index.to_string(): [message(&reason)] } }),
            ),
            ManageError::Forbidden => ApiError::forbidden(),
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

pub fn json_response(status: StatusCode, v: &Value) -> Response {
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
            ApiError::List(l) => json_response(StatusCode::BAD_REQUEST, &json!(l)),
            ApiError::Body(s, v) => json_response(s, &v),
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

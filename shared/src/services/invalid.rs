//! Why a management operation was refused, as typed values: the field at fault and the
//! reason. The HTTP layer chooses the words clients see (Pulp's `{"field": ["message"]}`).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! this module is part of `services` and knows `domain`, `ports` and `store` only.

use crate::domain::url_policy::Refusal;
use crate::domain::Digest;
use crate::ports::StoreError;
use crate::store::{TaskState, WriteError};

/// Why a management operation was refused. Field errors name the API field.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: Invalid },
    /// Refused as a whole, naming no field.
    #[error("{0}")]
    Refused(Invalid),
    /// Refused as a whole for reasons naming no field (Pulp's `non_field_errors`).
    #[error("refused")]
    NonField(Vec<Invalid>),
    /// One item of a list field is refused (`{"users": {"0": […]}}`).
    #[error("{field}[{index}]: {reason}")]
    FieldItem {
        field: &'static str,
        index: usize,
        reason: Invalid,
    },
    /// The caller may not do this.
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("busy")]
    Busy,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What is wrong with a field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Another object already has this name or base path.
    #[error("not unique")]
    Unique,
    /// A reference to an object that does not exist.
    #[error("no such object")]
    NoObject,
    /// One of several references (given here) names no object.
    #[error("no object at {0}")]
    NoObjectAt(String),
    /// A reference that is not of the expected shape.
    #[error("not a reference to an object of this kind")]
    NoMatch,
    /// A distribution serves the version, so it is not deleted.
    #[error("the version is served by a distribution")]
    VersionProtected,
    /// A pull-through remote where only a container remote will do (a sync's remote).
    #[error("a pull-through remote cannot be synced from")]
    PullThroughRemote,
    /// The base path overlaps the named distribution's.
    #[error("overlaps with distribution {0}")]
    BasePathOverlaps(String),
    #[error("the manifest is not in the repository")]
    ManifestNotInRepository,
    #[error("the tag is not in the repository")]
    TagNotInRepository,
    #[error("manifest {0} is not stored")]
    ManifestNotStored(Digest),
    /// Refused by the remote URL policy.
    #[error("{0}")]
    Url(Refusal),
    /// Not an absolute http(s) URL.
    #[error("not an http or https URL")]
    NotHttpUrl,
    /// Not a URL at all.
    #[error("not a URL")]
    NotUrl,
    /// A URL carrying credentials (they belong in the username and password fields).
    #[error("the URL carries credentials")]
    UrlCredentials,
    /// The task is final already (in the given state) and cannot be canceled.
    #[error("the task is already {}", .0.as_str())]
    TaskFinished(TaskState),
    /// The task has not finished yet and cannot be deleted.
    #[error("the task has not finished")]
    TaskUnfinished,
    /// No role has this name.
    #[error("no role {0}")]
    NoRole(String),
    /// No user has this name.
    #[error("no user {0}")]
    NoUser(String),
    /// No group has this name.
    #[error("no group {0}")]
    NoGroup(String),
    /// The role (named when given) carries no permission for the object's kind.
    #[error("the role carries no permission for that object")]
    RoleNotForObject(Option<String>),
    /// The role is given to them there already.
    #[error("the role is already assigned")]
    RoleAssigned(Who),
    /// The role is not given to them there.
    #[error("the role is not assigned")]
    RoleNotAssigned(Who),
    #[error("the password is shorter than {0} characters")]
    PasswordTooShort(usize),
    #[error("the password is too similar to the username")]
    PasswordLikeUsername,
    #[error("the password is entirely numeric")]
    PasswordNumeric,
    /// A value the domain refused, with its own explanation (TLS settings, names).
    #[error("{0}")]
    Message(String),
}

/// Whom a role assignment names, as an error speaks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    ThisUser,
    ThisGroup,
    User(String),
    Group(String),
}

impl ManageError {
    pub fn invalid(field: &'static str, reason: Invalid) -> Self {
        ManageError::Field { field, reason }
    }

    /// A field error with the domain's own explanation.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::invalid(field, Invalid::Message(message.into()))
    }
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ManageError::NotFound,
            e => ManageError::Internal(Box::new(e)),
        }
    }
}

impl From<WriteError> for ManageError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotFound => ManageError::NotFound,
            WriteError::Busy | WriteError::LeaseLost => ManageError::Busy,
            WriteError::Store(e) => e.into(),
        }
    }
}

/// Checks that `u` is an absolute http or https URL with a host and no credentials.
pub fn check_url_shape(u: &str) -> Result<(), Invalid> {
    let uri: http::Uri = u.parse().map_err(|_| Invalid::NotUrl)?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(Invalid::NotHttpUrl),
    }
    let auth = uri.authority().ok_or(Invalid::NotUrl)?;
    if auth.as_str().contains('@') {
        return Err(Invalid::UrlCredentials);
    }
    if auth.host().is_empty() {
        return Err(Invalid::NotUrl);
    }
    Ok(())
}

//! The error table: each service error's OCI code and HTTP status, in one place.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::ports::StoreError;
use crate::services::RegistryError;

/// The message of a 507 answer on `/v2` (what `RegistryError::NoSpace` says).
const NO_SPACE_MESSAGE: &str = "the server is out of storage space";

/// The `detail` of a 507 answer, the same on `/v2` and on the management API.
pub const NO_SPACE_DETAIL: &str = "the server is out of storage space; nothing was stored. Retry once space is freed";

/// The OCI distribution spec's error codes, serialized as the spec spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OciCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    #[serde(rename = "TOOMANYREQUESTS")]
    TooManyRequests,
    /// Not a spec code: used for 416 answers and for 5xx, which carry no detail.
    RangeInvalid,
    Unknown,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    code: OciCode,
    message: &'a str,
    detail: serde_json::Value,
}

/// An OCI error response.
#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: OciCode,
    pub message: String,
    pub detail: serde_json::Value,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl OciError {
    pub fn new(status: StatusCode, code: OciCode, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        use OciCode as C;
        use RegistryError as E;
        use StatusCode as S;
        let mut msg = e.to_string();
        let (status, code, detail) = match &e {
            E::BlobUnknown(d) => (S::NOT_FOUND, C::BlobUnknown, serde_json::json!({ "digest": d })),
            E::BlobUploadInvalid(_) => (S::BAD_REQUEST, C::BlobUploadInvalid, serde_json::Value::Null),
            E::BlobUploadUnknown => (S::NOT_FOUND, C::BlobUploadUnknown, serde_json::Value::Null),
            E::DigestInvalid(_) => (S::BAD_REQUEST, C::DigestInvalid, serde_json::Value::Null),
            E::ManifestBlobUnknown(d) => (S::NOT_FOUND, C::ManifestBlobUnknown, serde_json::json!({ "digest": d })),
            E::ManifestInvalid(_) => (S::BAD_REQUEST, C::ManifestInvalid, serde_json::Value::Null),
            E::ManifestUnknown(_) => (S::NOT_FOUND, C::ManifestUnknown, serde_json::Value::Null),
            E::NameInvalid(_) => (S::BAD_REQUEST, C::NameInvalid, serde_json::Value::Null),
            E::NameUnknown(_) => (S::NOT_FOUND, C::NameUnknown, serde_json::Value::Null),
            E::Denied(_) => (S::FORBIDDEN, C::Denied, serde_json::Value::Null),
            E::Unsupported(_) => (S::METHOD_NOT_ALLOWED, C::Unsupported, serde_json::Value::Null),
            E::RangeNotSatisfiable { .. } => (S::RANGE_NOT_SATISFIABLE, C::RangeInvalid, serde_json::Value::Null),
            E::UploadOutOfOrder { .. } => (S::RANGE_NOT_SATISFIABLE, C::BlobUploadInvalid, serde_json::Value::Null),
            E::Busy => (S::TOO_MANY_REQUESTS, C::TooManyRequests, serde_json::Value::Null),
            // A full disk is the server's problem, not the request's: 507 Insufficient Storage.
            // The spec has no code for it. BLOB_UPLOAD_INVALID is the spec code for "this upload
            // failed", which is what the client was doing (a manifest is stored as a blob too);
            // clients that read a 5xx body (crane, for one) print its code and message, and
            // docker, podman and skopeo print the status line, "507 Insufficient Storage".
            // MANIFEST_INVALID or DIGEST_INVALID would send the user to fix content that is
            // fine, and UNKNOWN is no spec code.
            E::NoSpace(source) => {
                tracing::warn!(source = ?source, "out of storage space");
                no_space()
            }
            E::Internal(source) if StoreError::is_no_space_in(source.as_ref()) => {
                tracing::warn!(source = ?source, "out of storage space");
                msg = NO_SPACE_MESSAGE.to_owned();
                no_space()
            }
            E::Internal(source) => {
                tracing::error!(error = %e, source = ?source, "internal error");
                (S::INTERNAL_SERVER_ERROR, C::Unknown, serde_json::Value::Null)
            }
        };
        let mut err = OciError::new(status, code, msg).detail(detail);
        match e {
            E::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    err.headers.push((header::CONTENT_RANGE, v));
                }
            }
            E::UploadOutOfOrder { size, .. } => {
                let end = size.saturating_sub(1);
                if let Ok(v) = HeaderValue::from_str(&format!("0-{end}")) {
                    err.headers.push((header::RANGE, v));
                }
            }
            E::Busy => err.headers.push((header::RETRY_AFTER, HeaderValue::from_static("1"))),
            _ => {}
        }
        err
    }
}

fn no_space() -> (StatusCode, OciCode, serde_json::Value) {
    (
        StatusCode::INSUFFICIENT_STORAGE,
        OciCode::BlobUploadInvalid,
        serde_json::Value::from(NO_SPACE_DETAIL),
    )
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            errors: [ErrorEntry {
                code: self.code,
                message: &self.message,
                detail: self.detail,
            }],
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec());
        let mut resp = (self.status, json).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_the_spec_spells_them() {
        let cases = [
            (OciCode::BlobUnknown, "BLOB_UNKNOWN"),
            (OciCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID"),
            (OciCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN"),
            (OciCode::DigestInvalid, "DIGEST_INVALID"),
            (OciCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN"),
            (OciCode::ManifestInvalid, "MANIFEST_INVALID"),
            (OciCode::ManifestUnknown, "MANIFEST_UNKNOWN"),
            (OciCode::NameInvalid, "NAME_INVALID"),
            (OciCode::NameUnknown, "NAME_UNKNOWN"),
            (OciCode::SizeInvalid, "SIZE_INVALID"),
            (OciCode::Unauthorized, "UNAUTHORIZED"),
            (OciCode::Denied, "DENIED"),
            (OciCode::Unsupported, "UNSUPPORTED"),
            (OciCode::TooManyRequests, "TOOMANYREQUESTS"),
        ];
        for (code, wire) in cases {
            assert_eq!(serde_json::to_value(code).unwrap(), wire);
        }
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e: OciError = RegistryError::Internal("disk on fire at /secret/path".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("secret"));
    }

    #[test]
    fn a_full_disk_is_507_with_a_detail_and_no_internals() {
        let msg = RegistryError::NoSpace(std::io::Error::from(std::io::ErrorKind::StorageFull).into()).to_string();
        assert_eq!(msg, NO_SPACE_MESSAGE);
        let full = || StoreError::NoSpace(Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)));
        let wrapped = RegistryError::Internal(Box::new(crate::store::WriteError::Store(full())));
        for e in [RegistryError::from(full()), wrapped] {
            let e = OciError::from(e);
            assert_eq!(e.status, StatusCode::INSUFFICIENT_STORAGE);
            assert_eq!(e.code, OciCode::BlobUploadInvalid);
            assert_eq!(e.message, NO_SPACE_MESSAGE);
            assert_eq!(e.detail, NO_SPACE_DETAIL);
            assert!(!e.message.contains("device"), "{}", e.message);
        }
    }
}

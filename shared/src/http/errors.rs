//! The OCI error table: every error `/v2` and `/token` answer, its HTTP status and the code its
//! body carries, each written down once.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this
//! module is `http`: it turns service errors into wire answers and knows nothing below them.
//!
//! Two tables, and only these pick a status:
//!
//! - [`OciCode::status`]: the OCI distribution spec's error codes, each with the status the
//!   spec (and distribution's registry) gives it. Only the spec's codes exist.
//! - [`HttpAnswer`]: the few answers whose status is HTTP's business rather than the spec's (an
//!   unknown endpoint, a malformed query parameter, an unsatisfiable range, a body too large for
//!   the platform, a full disk, an internal error). Each states its status and the code its body
//!   carries: the nearest spec code where one fits, so that clients that print a body's code
//!   (crane, for one) say something true, and no code where none fits (a byte range, an internal
//!   error: the entry then carries only `message` and `detail`). Docker and containerd read the
//!   status of these answers, never their code, and ignore the body of a 5xx.
//!
//! An [`OciError`] is built from one row of either table plus a message (and an optional
//! detail and headers); never from a free status. Every answer has the spec's body shape,
//! `{"errors":[{"code","message","detail"}]}`, with `Content-Type: application/json`. A 5xx
//! carries a fixed message; the real error goes to the log.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::ports::StoreError;
use crate::services::RegistryError;

/// The message of a 507 answer on `/v2` (what `RegistryError::NoSpace` says).
const NO_SPACE_MESSAGE: &str = "the server is out of storage space";

/// The `detail` of a 507 answer, the same on `/v2` and on the management API.
pub const NO_SPACE_DETAIL: &str = "the server is out of storage space; nothing was stored. Retry once space is freed";

/// The message of a 500 answer: nothing of the real error reaches the client.
const INTERNAL_MESSAGE: &str = "internal error";

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
}

impl OciCode {
    /// Every code, in the spec's order.
    pub const ALL: [OciCode; 14] = [
        OciCode::BlobUnknown,
        OciCode::BlobUploadInvalid,
        OciCode::BlobUploadUnknown,
        OciCode::DigestInvalid,
        OciCode::ManifestBlobUnknown,
        OciCode::ManifestInvalid,
        OciCode::ManifestUnknown,
        OciCode::NameInvalid,
        OciCode::NameUnknown,
        OciCode::SizeInvalid,
        OciCode::Unauthorized,
        OciCode::Denied,
        OciCode::Unsupported,
        OciCode::TooManyRequests,
    ];

    /// The status a spec error is answered with: the one place that says it.
    pub const fn status(self) -> StatusCode {
        use OciCode as C;
        match self {
            C::BlobUnknown | C::BlobUploadUnknown | C::ManifestBlobUnknown | C::ManifestUnknown | C::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            C::BlobUploadInvalid | C::DigestInvalid | C::ManifestInvalid | C::NameInvalid | C::SizeInvalid => {
                StatusCode::BAD_REQUEST
            }
            C::Unauthorized => StatusCode::UNAUTHORIZED,
            C::Denied => StatusCode::FORBIDDEN,
            C::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            C::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// The answers whose status the spec does not fix, each with its status and its body's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAnswer {
    /// 404: no route has this shape (or the endpoint is switched off). Body: `UNSUPPORTED`,
    /// "the operation is unsupported"; 404 because the resource, not the method, is missing.
    NoSuchEndpoint,
    /// 400: a query parameter the spec gives no code for is malformed (`n` that is no
    /// number). Body: `UNSUPPORTED`, as distribution answers 400 for its own pagination code.
    BadQuery,
    /// 416 on a blob GET: the `Range` header does not fit the blob (answered with
    /// `Content-Range: bytes */<size>`). No spec code describes a byte range: no code.
    RangeNotSatisfiable,
    /// 416 on an upload PATCH: the chunk does not start where the upload ends, or its
    /// `Content-Range` is malformed; the spec asks for 416 here. Body: `BLOB_UPLOAD_INVALID`.
    UploadRangeInvalid,
    /// 413: the body is larger than the platform carries (API Gateway and Lambda). Body:
    /// `SIZE_INVALID`.
    BodyTooLarge,
    /// 507: the server's storage is full; nothing was stored. Body: `BLOB_UPLOAD_INVALID`,
    /// the spec code for "this upload failed", which is what the client was doing (a manifest
    /// is stored as a blob too); `MANIFEST_INVALID` or `DIGEST_INVALID` would send the user to
    /// fix content that is fine.
    NoSpace,
    /// 502: a pull through a cache needs the upstream registry, and it failed (unreachable,
    /// timed out, refused the credentials). Only for content Berth does not hold; what it
    /// holds is served from the cache. No spec code fits: no code.
    UpstreamFailed,
    /// 503 with `Retry-After`: a blob is on its way from upstream into the blob store and
    /// this runtime cannot pass its bytes on (AWS Lambda). No spec code fits: no code.
    NotYet,
    /// 500: anything else that went wrong on the server. No spec code fits: no code.
    Internal,
}

impl HttpAnswer {
    /// The status of the answer and the spec code its body carries, if any.
    pub const fn row(self) -> (StatusCode, Option<OciCode>) {
        use HttpAnswer as A;
        match self {
            A::NoSuchEndpoint => (StatusCode::NOT_FOUND, Some(OciCode::Unsupported)),
            A::BadQuery => (StatusCode::BAD_REQUEST, Some(OciCode::Unsupported)),
            A::RangeNotSatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, None),
            A::UploadRangeInvalid => (StatusCode::RANGE_NOT_SATISFIABLE, Some(OciCode::BlobUploadInvalid)),
            A::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, Some(OciCode::SizeInvalid)),
            A::NoSpace => (StatusCode::INSUFFICIENT_STORAGE, Some(OciCode::BlobUploadInvalid)),
            A::UpstreamFailed => (StatusCode::BAD_GATEWAY, None),
            A::NotYet => (StatusCode::SERVICE_UNAVAILABLE, None),
            A::Internal => (StatusCode::INTERNAL_SERVER_ERROR, None),
        }
    }
}

/// Which row of which table an error answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spec(OciCode),
    Http(HttpAnswer),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<OciCode>,
    message: &'a str,
    detail: &'a serde_json::Value,
}

/// An OCI error response.
#[derive(Debug)]
pub struct OciError {
    kind: Kind,
    pub message: String,
    pub detail: serde_json::Value,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl OciError {
    /// A spec error; its status is the code's.
    pub fn new(code: OciCode, message: impl Into<String>) -> Self {
        Self::of(Kind::Spec(code), message)
    }

    /// One of the answers whose status is HTTP's business.
    pub fn http(answer: HttpAnswer, message: impl Into<String>) -> Self {
        Self::of(Kind::Http(answer), message)
    }

    fn of(kind: Kind, message: impl Into<String>) -> Self {
        OciError {
            kind,
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// Adds a response header (`WWW-Authenticate`, `Retry-After`, `Range`, …).
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::Spec(c) => c.status(),
            Kind::Http(a) => a.row().0,
        }
    }

    /// The spec code the body carries, if any.
    pub fn code(&self) -> Option<OciCode> {
        match self.kind {
            Kind::Spec(c) => Some(c),
            Kind::Http(a) => a.row().1,
        }
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        use OciCode as C;
        use RegistryError as E;
        let digest = |d: &crate::domain::Digest| serde_json::json!({ "digest": d });
        let spec = |code: C, e: &E| OciError::new(code, e.to_string());
        match &e {
            E::BlobUnknown(d) => spec(C::BlobUnknown, &e).detail(digest(d)),
            E::BlobUploadInvalid(_) => spec(C::BlobUploadInvalid, &e),
            E::BlobUploadUnknown => spec(C::BlobUploadUnknown, &e),
            E::DigestInvalid(_) => spec(C::DigestInvalid, &e),
            E::ManifestBlobUnknown(d) => spec(C::ManifestBlobUnknown, &e).detail(digest(d)),
            E::ManifestInvalid(_) => spec(C::ManifestInvalid, &e),
            E::ManifestUnknown(_) => spec(C::ManifestUnknown, &e),
            E::NameInvalid(_) => spec(C::NameInvalid, &e),
            E::NameUnknown(_) => spec(C::NameUnknown, &e),
            E::Denied(_) => spec(C::Denied, &e),
            E::Unsupported(_) => spec(C::Unsupported, &e),
            E::Busy => spec(C::TooManyRequests, &e).header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            E::UpstreamThrottled(_) => {
                spec(C::TooManyRequests, &e).header(header::RETRY_AFTER, HeaderValue::from_static("10"))
            }
            E::UpstreamFailed(_) => OciError::http(HttpAnswer::UpstreamFailed, e.to_string()),
            E::NotYet(_) => OciError::http(HttpAnswer::NotYet, e.to_string())
                .header(header::RETRY_AFTER, HeaderValue::from_static("5")),
            E::RangeNotSatisfiable { size } => {
                let err = OciError::http(HttpAnswer::RangeNotSatisfiable, e.to_string());
                match HeaderValue::from_str(&format!("bytes */{size}")) {
                    Ok(v) => err.header(header::CONTENT_RANGE, v),
                    Err(_) => err,
                }
            }
            E::UploadOutOfOrder { size, .. } => {
                let err = OciError::http(HttpAnswer::UploadRangeInvalid, e.to_string());
                match HeaderValue::from_str(&format!("0-{}", size.saturating_sub(1))) {
                    Ok(v) => err.header(header::RANGE, v),
                    Err(_) => err,
                }
            }
            E::NoSpace(source) => {
                tracing::warn!(source = ?source, "out of storage space");
                no_space()
            }
            E::Internal(source) if StoreError::is_no_space_in(source.as_ref()) => {
                tracing::warn!(source = ?source, "out of storage space");
                no_space()
            }
            E::Internal(source) => {
                tracing::error!(error = %e, source = ?source, "internal error");
                OciError::http(HttpAnswer::Internal, INTERNAL_MESSAGE)
            }
        }
    }
}

fn no_space() -> OciError {
    OciError::http(HttpAnswer::NoSpace, NO_SPACE_MESSAGE).detail(serde_json::Value::from(NO_SPACE_DETAIL))
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            errors: [ErrorEntry {
                code: self.code(),
                message: &self.message,
                detail: &self.detail,
            }],
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec());
        let mut resp = (status, json).into_response();
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

    async fn body_of(e: OciError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The wire: each code's spelling and status, as the spec gives them.
    #[test]
    fn codes_are_spelled_and_answered_as_the_spec_says() {
        let cases = [
            (OciCode::BlobUnknown, "BLOB_UNKNOWN", 404),
            (OciCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400),
            (OciCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
            (OciCode::DigestInvalid, "DIGEST_INVALID", 400),
            (OciCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 404),
            (OciCode::ManifestInvalid, "MANIFEST_INVALID", 400),
            (OciCode::ManifestUnknown, "MANIFEST_UNKNOWN", 404),
            (OciCode::NameInvalid, "NAME_INVALID", 400),
            (OciCode::NameUnknown, "NAME_UNKNOWN", 404),
            (OciCode::SizeInvalid, "SIZE_INVALID", 400),
            (OciCode::Unauthorized, "UNAUTHORIZED", 401),
            (OciCode::Denied, "DENIED", 403),
            (OciCode::Unsupported, "UNSUPPORTED", 405),
            (OciCode::TooManyRequests, "TOOMANYREQUESTS", 429),
        ];
        assert_eq!(cases.len(), OciCode::ALL.len());
        for ((code, wire, status), listed) in cases.into_iter().zip(OciCode::ALL) {
            assert_eq!(code, listed);
            assert_eq!(serde_json::to_value(code).unwrap(), wire);
            assert_eq!(code.status().as_u16(), status, "{wire}");
            assert_eq!(OciError::new(code, "x").status().as_u16(), status, "{wire}");
        }
    }

    #[test]
    fn the_answers_outside_the_spec_have_their_status_and_nearest_code() {
        let cases = [
            (HttpAnswer::NoSuchEndpoint, 404, Some("UNSUPPORTED")),
            (HttpAnswer::BadQuery, 400, Some("UNSUPPORTED")),
            (HttpAnswer::RangeNotSatisfiable, 416, None),
            (HttpAnswer::UploadRangeInvalid, 416, Some("BLOB_UPLOAD_INVALID")),
            (HttpAnswer::BodyTooLarge, 413, Some("SIZE_INVALID")),
            (HttpAnswer::NoSpace, 507, Some("BLOB_UPLOAD_INVALID")),
            (HttpAnswer::UpstreamFailed, 502, None),
            (HttpAnswer::NotYet, 503, None),
            (HttpAnswer::Internal, 500, None),
        ];
        for (answer, status, code) in cases {
            let e = OciError::http(answer, "x");
            assert_eq!(e.status().as_u16(), status, "{answer:?}");
            let wire = e.code().map(|c| serde_json::to_value(c).unwrap());
            assert_eq!(wire.as_ref().and_then(|v| v.as_str()), code, "{answer:?}");
        }
    }

    #[tokio::test]
    async fn the_body_is_the_spec_shape_and_a_missing_code_is_left_out() {
        let (status, v) = body_of(OciError::new(OciCode::NameUnknown, "no such name")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            v,
            serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "no such name", "detail": null}]})
        );
        let (status, v) = body_of(RegistryError::RangeNotSatisfiable { size: 3 }.into()).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert!(v["errors"][0].get("code").is_none(), "{v}");
        assert_eq!(v["errors"][0]["message"], "requested range not satisfiable");
    }

    #[test]
    fn range_and_retry_headers_go_with_their_errors() {
        let e = OciError::from(RegistryError::RangeNotSatisfiable { size: 10 });
        assert_eq!(
            e.headers,
            vec![(header::CONTENT_RANGE, HeaderValue::from_static("bytes */10"))]
        );
        let e = OciError::from(RegistryError::UploadOutOfOrder {
            size: 10,
            upload: uuid::Uuid::nil(),
        });
        assert_eq!(e.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(e.code(), Some(OciCode::BlobUploadInvalid));
        assert_eq!(e.headers, vec![(header::RANGE, HeaderValue::from_static("0-9"))]);
        let e = OciError::from(RegistryError::Busy);
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.headers, vec![(header::RETRY_AFTER, HeaderValue::from_static("1"))]);
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e: OciError = RegistryError::Internal("disk on fire at /secret/path".into()).into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code(), None);
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
            assert_eq!(e.status(), StatusCode::INSUFFICIENT_STORAGE);
            assert_eq!(e.code(), Some(OciCode::BlobUploadInvalid));
            assert_eq!(e.message, NO_SPACE_MESSAGE);
            assert_eq!(e.detail, NO_SPACE_DETAIL);
            assert!(!e.message.contains("device"), "{}", e.message);
        }
    }
}

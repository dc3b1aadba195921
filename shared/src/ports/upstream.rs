//! The upstream port: what a sync (and an on-demand pull) asks of the registry a remote names.
//!
//! One [`Upstream`] talks to one repository of one registry with one set of credentials; an
//! [`UpstreamFactory`] builds it from an [`UpstreamConfig`]. The adapter owns the wire
//! details (authentication challenges, redirects, retries, rate limits); callers see bytes,
//! media types, digests and a typed [`UpstreamError`] that keeps the URL and status for task
//! messages.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::ByteStream;
use crate::domain::Digest;

/// The manifest media types asked for on every manifest request, schema 1 included so that a
/// schema-1-only tag answers with its media type (and is then skipped) rather than a 404.
pub const MANIFEST_ACCEPT: [&str; 6] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];

/// How to reach one upstream repository: a remote's connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Identifies the settings for client caching (a remote's id and its last update).
    pub key: String,
    /// The registry's base URL (`https://registry.example`), without `/v2`.
    pub url: String,
    /// The repository name upstream, as the remote states it (`alpine`, `org/app`).
    pub upstream_name: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls_validation: bool,
    /// Parallel requests at most (default 4).
    pub download_concurrency: Option<u64>,
    /// Requests per second at most.
    pub rate_limit: Option<u64>,
    /// Retries of a failed request (5xx, 429, timeouts, connection errors); default 3.
    pub max_retries: Option<u64>,
    pub total_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    /// Extra request headers (name → value).
    pub headers: Vec<(String, String)>,
}

/// What a manifest HEAD answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The `Content-Type` essence, when sent.
    pub media_type: Option<String>,
    /// The `Docker-Content-Digest` header, when sent and valid.
    pub digest: Option<Digest>,
}

/// A manifest as fetched: its exact bytes, the `Content-Type` and the digest header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamManifest {
    pub bytes: Bytes,
    pub media_type: Option<String>,
    pub digest_header: Option<Digest>,
}

/// One page of `tags/list`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagPage {
    pub tags: Vec<String>,
    /// Where the next page is (the `Link: <…>; rel="next"` target), if any.
    pub next: Option<String>,
}

/// A blob download: its announced size (when the upstream sent `Content-Length`) and the
/// bytes. The stream fails (never ends early without an error) on a truncated body.
pub struct UpstreamBlob {
    pub size: Option<u64>,
    pub body: ByteStream,
}

/// An "atomic" (simple signing) signature as the signature extension API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicSignature {
    /// The upstream's name for it, when it has one.
    pub name: Option<String>,
    /// The signature bytes (an OpenPGP signed message).
    pub content: Bytes,
}

/// Why an upstream request failed. Every variant names the URL; none carries credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// 404: the repository, tag, manifest or blob is not there.
    #[error("{url} answered 404 Not Found")]
    NotFound { url: String },
    /// 401/403 after authenticating (or with no way to): wrong or missing credentials.
    #[error("{url} answered {code}: {detail}")]
    Unauthorized { url: String, code: u16, detail: String },
    /// 429 more often than the retries allow.
    #[error("{url} answered 429 Too Many Requests (retried {retries} times)")]
    TooManyRequests { url: String, retries: u64 },
    /// Any other unexpected status (5xx after the retries, 400, …).
    #[error("{url} answered HTTP {code}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status { url: String, code: u16, detail: String },
    /// The connection failed, timed out or was reset (after the retries).
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The answer arrived but makes no sense (bad JSON, a bad redirect, a bad header).
    #[error("{url} sent an invalid answer: {message}")]
    Invalid { url: String, message: String },
    /// The remote's settings cannot make a client (a bad URL).
    #[error("invalid remote settings: {0}")]
    Config(String),
}

impl UpstreamError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::NotFound { .. })
    }
}

/// One upstream repository. Methods are safe to call concurrently; the adapter bounds its
/// own concurrency and request rate.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// The repository's base URL for messages (`<url>/v2/<name>`).
    fn location(&self) -> String;

    /// One page of the tag list: the first when `next` is `None`, else the page `next`
    /// (a URL or path from the previous page) names. A missing repository is `NotFound`.
    async fn tags_page(&self, next: Option<&str>) -> Result<TagPage, UpstreamError>;

    /// HEAD of a manifest by tag or digest. `NotFound` when it is not there.
    async fn head_manifest(&self, reference: &str) -> Result<ManifestHead, UpstreamError>;

    /// GET of a manifest by tag or digest, with [`MANIFEST_ACCEPT`]. The bytes are exactly
    /// what the upstream sent; the caller verifies the digest.
    async fn get_manifest(&self, reference: &str) -> Result<UpstreamManifest, UpstreamError>;

    /// GET of a blob, following redirects (credentials are never sent to another host). The
    /// caller verifies the digest while storing.
    async fn get_blob(&self, digest: &Digest) -> Result<UpstreamBlob, UpstreamError>;

    /// The OCI 1.1 referrers index of `digest`, or `None` when the upstream does not
    /// support the referrers API.
    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, UpstreamError>;

    /// Whether the upstream answers `/v2/` with `X-Registry-Supports-Signatures: 1`.
    async fn supports_signatures(&self) -> Result<bool, UpstreamError>;

    /// Atomic signatures of `digest` from `/extensions/v2/<name>/signatures/<digest>`
    /// (schema version 2, type atomic only). Empty when there are none.
    async fn extension_signatures(&self, digest: &Digest) -> Result<Vec<AtomicSignature>, UpstreamError>;

    /// Signature number `n` (from 1) of `digest` from a sigstore lookaside:
    /// `<sigstore>/<upstream name>@<algorithm>=<hex>/signature-<n>`; `None` on 404.
    async fn lookaside_signature(
        &self,
        sigstore: &str,
        digest: &Digest,
        n: u32,
    ) -> Result<Option<Bytes>, UpstreamError>;
}

/// Builds upstream clients. Implementations may cache clients (and their tokens) per
/// [`UpstreamConfig::key`].
pub trait UpstreamFactory: Send + Sync + 'static {
    fn client(&self, config: &UpstreamConfig) -> Result<Arc<dyn Upstream>, UpstreamError>;
}

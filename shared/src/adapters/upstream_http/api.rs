//! The port's operations over HTTP: tag list pages (following `Link`), manifests (HEAD and
//! GET with the accepted media types), blobs (streamed, length-checked, holding their slot),
//! referrers, and atomic signatures (the extension API and the sigstore lookaside).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! an adapter of `ports::Upstream` and knows nothing of services or the store.

use std::io;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderName, Method, StatusCode};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::connect::{shown, transport};
use super::send::{read_small, same_origin};
use super::HttpUpstream;
use crate::domain::media::essence;
use crate::domain::Digest;
use crate::ports::{
    AtomicSignature, ByteStream, ManifestHead, TagPage, Upstream, UpstreamBlob, UpstreamError, UpstreamManifest,
    MANIFEST_ACCEPT,
};

const SUPPORTS_SIGNATURES: HeaderName = HeaderName::from_static("x-registry-supports-signatures");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

#[derive(Deserialize)]
struct TagsAnswer {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SignaturesAnswer {
    #[serde(default)]
    signatures: Vec<SignatureEntry>,
}

#[derive(Deserialize)]
struct SignatureEntry {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    content: Option<String>,
}

/// The `next` target of a `Link` header, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let part = part.trim();
            let Some(end) = part.find('>') else { continue };
            if !part.starts_with('<') {
                continue;
            }
            let target = &part[1..end];
            let params = &part[end + 1..];
            if params
                .split(';')
                .any(|p| p.trim().replace(' ', "").eq_ignore_ascii_case("rel=\"next\"") || p.trim() == "rel=next")
            {
                return Some(target.to_owned());
            }
        }
    }
    None
}

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence)
        .filter(|s| !s.is_empty())
}

fn digest_header(h: &HeaderMap) -> Option<Digest> {
    h.get(CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

/// The body of a blob download: fails when the connection ends before `expected` bytes, and
/// holds the concurrency slot until it is dropped.
fn blob_stream(url: Url, resp: reqwest::Response, expected: Option<u64>, permit: OwnedSemaphorePermit) -> ByteStream {
    struct St {
        inner: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        got: u64,
        expected: Option<u64>,
        url: Url,
        done: bool,
        _permit: OwnedSemaphorePermit,
    }
    let st = St {
        inner: resp.bytes_stream().boxed(),
        got: 0,
        expected,
        url,
        done: false,
        _permit: permit,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(b)) => {
                st.got += b.len() as u64;
                if st.expected.is_some_and(|n| st.got > n) {
                    st.done = true;
                    let msg = format!("{} sent more than the {} bytes announced", shown(&st.url), st.got);
                    return Some((Err(io::Error::new(io::ErrorKind::InvalidData, msg)), st));
                }
                Some((Ok(b), st))
            }
            Some(Err(e)) => {
                st.done = true;
                let msg = transport(&st.url, &e).to_string();
                Some((Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg)), st))
            }
            None => {
                st.done = true;
                match st.expected {
                    Some(n) if st.got != n => {
                        let msg = format!("{}: truncated body: {} of {n} bytes", shown(&st.url), st.got);
                        Some((Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg)), st))
                    }
                    _ => None,
                }
            }
        }
    }))
}

#[async_trait]
impl Upstream for HttpUpstream {
    fn location(&self) -> String {
        format!("{}v2/{}", self.base, self.name)
    }

    async fn tags_page(&self, next: Option<&str>) -> Result<TagPage, UpstreamError> {
        let url = match next {
            None => self.v2("tags/list")?,
            Some(n) => {
                let u = self.base.join(n).map_err(|e| UpstreamError::Invalid {
                    url: self.location(),
                    message: format!("bad Link {n:?}: {e}"),
                })?;
                if same_origin(&u, &self.base) {
                    u
                } else {
                    // as Pulp does: the path and query against the remote's URL
                    let mut v = self.base.join(u.path()).map_err(|e| UpstreamError::Invalid {
                        url: self.location(),
                        message: format!("bad Link {n:?}: {e}"),
                    })?;
                    v.set_query(u.query());
                    v
                }
            }
        };
        let (resp, at, _permit) = self.send(Method::GET, url, &["application/json"], false).await?;
        let next = next_link(resp.headers())
            .and_then(|l| at.join(&l).ok())
            .map(|u| u.to_string());
        let body = read_small(&at, resp).await?;
        let t: TagsAnswer = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: shown(&at),
            message: format!("not a tag list: {e}"),
        })?;
        Ok(TagPage {
            tags: t.tags.unwrap_or_default(),
            next,
        })
    }

    async fn head_manifest(&self, reference: &str) -> Result<ManifestHead, UpstreamError> {
        let url = self.v2(&format!("manifests/{reference}"))?;
        let (resp, _, _permit) = self.send(Method::HEAD, url, &MANIFEST_ACCEPT, false).await?;
        Ok(ManifestHead {
            media_type: content_type(resp.headers()),
            digest: digest_header(resp.headers()),
        })
    }

    async fn get_manifest(&self, reference: &str) -> Result<UpstreamManifest, UpstreamError> {
        let url = self.v2(&format!("manifests/{reference}"))?;
        let (headers, bytes) = self.get_small(url, &MANIFEST_ACCEPT).await?;
        Ok(UpstreamManifest {
            bytes,
            media_type: content_type(&headers),
            digest_header: digest_header(&headers),
        })
    }

    async fn get_blob(&self, digest: &Digest) -> Result<UpstreamBlob, UpstreamError> {
        let url = self.v2(&format!("blobs/{digest}"))?;
        let (resp, at, permit) = self.send(Method::GET, url, &[], false).await?;
        let size = resp.content_length();
        Ok(UpstreamBlob {
            size,
            body: blob_stream(at, resp, size, permit),
        })
    }

    async fn blob_elsewhere(&self, digest: &Digest) -> Result<Option<String>, UpstreamError> {
        let url = self.v2(&format!("blobs/{digest}"))?;
        match self.send_or_stop(Method::GET, url, &[], false, true).await? {
            super::send::Sent::Elsewhere(to) => Ok(Some(to.to_string())),
            // the registry serves the bytes itself: they are not read here
            super::send::Sent::Answer(..) => Ok(None),
        }
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, UpstreamError> {
        let url = self.v2(&format!("referrers/{digest}"))?;
        let accept = ["application/vnd.oci.image.index.v1+json"];
        match self.send(Method::GET, url, &accept, true).await {
            Ok((resp, at, _permit)) => {
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let is_index = content_type(resp.headers())
                    .is_some_and(|c| c == "application/vnd.oci.image.index.v1+json" || c == "application/json");
                let body = read_small(&at, resp).await?;
                Ok(is_index.then_some(body))
            }
            Err(UpstreamError::Status {
                code: 400 | 405 | 501, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn supports_signatures(&self) -> Result<bool, UpstreamError> {
        let url = self.url("v2/")?;
        let u = url.clone();
        let resp = self.attempt(&url, &move || self.http.get(u.clone())).await?;
        Ok(resp
            .headers()
            .get(SUPPORTS_SIGNATURES)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "1"))
    }

    async fn extension_signatures(&self, digest: &Digest) -> Result<Vec<AtomicSignature>, UpstreamError> {
        let url = self.url(&format!("extensions/v2/{}/signatures/{digest}", self.name))?;
        let (resp, at, _permit) = self.send(Method::GET, url, &["application/json"], true).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let body = read_small(&at, resp).await?;
        let a: SignaturesAnswer = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: shown(&at),
            message: format!("not a signature list: {e}"),
        })?;
        let mut out = Vec::new();
        for s in a.signatures {
            if s.schema_version != Some(2) || s.kind.as_deref() != Some("atomic") {
                continue;
            }
            let Some(content) = s.content else { continue };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|e| UpstreamError::Invalid {
                    url: shown(&at),
                    message: format!("signature content is not base64: {e}"),
                })?;
            out.push(AtomicSignature {
                name: s.name,
                content: Bytes::from(bytes),
            });
        }
        Ok(out)
    }

    async fn lookaside_signature(
        &self,
        sigstore: &str,
        digest: &Digest,
        n: u32,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let base = sigstore.trim_end_matches('/');
        let name = self.cfg.upstream_name.as_str();
        let raw = format!(
            "{base}/{name}@{}={}/signature-{n}",
            digest.algorithm().as_str(),
            digest.hex()
        );
        let url = Url::parse(&raw).map_err(|e| UpstreamError::Config(format!("sigstore {sigstore:?}: {e}")))?;
        let u = url.clone();
        let _permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::Config("client closed".into()))?;
        let resp = self.attempt(&url, &move || self.http.get(u.clone())).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(read_small(&url, resp).await?)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(UpstreamError::Status {
                url: shown(&url),
                code: s.as_u16(),
                detail: String::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn finds_the_next_link() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("</v2/x/tags/list?n=2&last=b>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/x/tags/list?n=2&last=b"));
        h.insert(header::LINK, HeaderValue::from_static("<http://a/b>; rel=\"prev\""));
        assert_eq!(next_link(&h), None);
    }
}

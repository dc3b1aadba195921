//! The OCI distribution API v1.1 on `/v2`.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures::TryStreamExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::json;

use super::auth::{Granted, Need, RegistryAuth};
use super::errors::{HttpAnswer, OciCode, OciError};
use super::path::{self, PathError, V2Path};
use super::range::{parse_content_range, parse_range, RangeAnswer};
use crate::domain::manifest::MAX_MANIFEST_BYTES;
use crate::domain::media::{Accept, MediaType, OCI_INDEX};
use crate::domain::{Digest, Reference, RepoName, Tag};
use crate::ports::ByteStream;
use crate::services::{AuthMode, BlobBody, Registry, RegistryError, UploadStart};

pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
pub const SUPPORTS_SIGNATURES: HeaderName = HeaderName::from_static("x-registry-supports-signatures");

#[derive(Clone)]
struct OciState {
    registry: Arc<Registry>,
    auth: Arc<RegistryAuth>,
}

/// The `/v2` router. Every response carries `Docker-Distribution-Api-Version: registry/2.0`
/// and `X-Registry-Supports-Signatures: 1` (clients and mirrors look for it on the ping,
/// whatever its status).
pub fn router(registry: Arc<Registry>, auth: Arc<RegistryAuth>) -> Router {
    Router::new()
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .route("/extensions/v2/{*rest}", any(extensions))
        .layer(axum::middleware::map_response(|mut r: Response| async move {
            let h = r.headers_mut();
            h.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
            h.insert(SUPPORTS_SIGNATURES, HeaderValue::from_static("1"));
            r
        }))
        .with_state(OciState { registry, auth })
}

type Answer = Result<Response, OciError>;

async fn v2(State(s): State<OciState>, req: Request) -> Response {
    match dispatch(&s.registry, &s.auth, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The signature extension: `GET /extensions/v2/<name>/signatures/<digest>` lists the
/// atomic signatures of a manifest in the served version.
async fn extensions(State(s): State<OciState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let answer = async {
        let path = parts.uri.path();
        let rest = path.strip_prefix("/extensions/v2/").unwrap_or("");
        let no_route = || OciError::http(HttpAnswer::NoSuchEndpoint, "no such endpoint");
        let (name, digest) = rest.rsplit_once("/signatures/").ok_or_else(no_route)?;
        let name = RepoName::parse(name).map_err(|e| RegistryError::NameInvalid(e.to_string()))?;
        let digest = Digest::parse(digest).map_err(|e| RegistryError::DigestInvalid(e.to_string()))?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Err(unsupported(&parts.method));
        }
        s.auth.check(&parts.headers, &Need::Repo(name.clone(), "pull")).await?;
        let sigs = s.registry.signatures(&name, &digest).await?;
        let list: Vec<serde_json::Value> = sigs
            .iter()
            .map(|s| json!({"schemaVersion": 2, "type": "atomic", "name": s.name, "content": s.data}))
            .collect();
        Ok::<_, OciError>(json_response(json!({ "signatures": list }), "application/json"))
    }
    .await;
    answer.unwrap_or_else(|e| e.into_response())
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The `n` of a paged list.
fn page_size(pairs: &[(String, String)]) -> Result<Option<usize>, OciError> {
    match param(pairs, "n") {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(Some)
            .map_err(|_| OciError::http(HttpAnswer::BadQuery, "n must be a non-negative integer")),
    }
}

/// The `last` of a paged list, parsed as what the list holds (an empty one is none).
fn page_after<T>(
    pairs: &[(String, String)],
    parse: impl FnOnce(&str) -> Result<T, crate::domain::DomainError>,
) -> Result<Option<T>, OciError> {
    match param(pairs, "last") {
        None | Some("") => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .map_err(|e| OciError::http(HttpAnswer::BadQuery, format!("last: {e}"))),
    }
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn json_response(value: serde_json::Value, content_type: &'static str) -> Response {
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn unsupported(method: &Method) -> OciError {
    OciError::new(OciCode::Unsupported, format!("method {method} is not supported here"))
}

/// What a route needs of the caller.
fn need(route: &V2Path, method: &Method) -> Need {
    match route {
        V2Path::Base => Need::Session,
        V2Path::Catalog => Need::Catalog,
        V2Path::Tags(n) | V2Path::Manifest(n, _) | V2Path::Blob(n, _) | V2Path::Referrers(n, _) => repo_need(n, method),
        V2Path::Uploads(n) | V2Path::Upload(n, _) => Need::Repo(n.clone(), "push"),
    }
}

/// Pull for reads, push for writes.
fn repo_need(name: &RepoName, method: &Method) -> Need {
    let read = matches!(*method, Method::GET | Method::HEAD);
    Need::Repo(name.clone(), if read { "pull" } else { "push" })
}

async fn dispatch(reg: &Registry, auth: &RegistryAuth, req: Request) -> Answer {
    let (parts, body) = req.into_parts();
    let raw = parts.uri.path();
    let rest = raw.strip_prefix("/v2").unwrap_or(raw);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let route = match path::parse(rest) {
        Ok(r) => r,
        Err(PathError::Invalid(e)) => return Err(e.into()),
        Err(PathError::NoRoute) => return Err(OciError::http(HttpAnswer::NoSuchEndpoint, "no such endpoint")),
        Err(PathError::BadReference(bad)) => {
            // what a bad reference means is told only to who may use the repository
            auth.check(&parts.headers, &repo_need(&bad.name, &parts.method)).await?;
            return Err(match parts.method {
                Method::GET | Method::HEAD | Method::DELETE => bad.error(false).into(),
                Method::PUT => bad.error(true).into(),
                ref m => unsupported(m),
            });
        }
    };
    let granted = auth.check(&parts.headers, &need(&route, &parts.method)).await?;
    let route = mirrored(reg, route, &parts).await?;
    let actor = std::sync::Arc::new(granted.identity.clone());
    crate::services::acting::with_actor(actor, serve(reg, auth, &granted, route, &parts, body)).await
}

/// A pull of a name no Berth path serves, as a mirror gets it (docker's `registry-mirrors`,
/// containerd's `?ns=`): the same route under the pull-through distribution it goes to.
async fn mirrored(reg: &Registry, route: V2Path, parts: &http::request::Parts) -> Result<V2Path, OciError> {
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        return Ok(route);
    }
    let q = query_pairs(parts.uri.query());
    let ns = param(&q, "ns");
    Ok(match route {
        V2Path::Tags(n) => V2Path::Tags(reg.mirror_route(&n, ns).await?.unwrap_or(n)),
        V2Path::Manifest(n, r) => V2Path::Manifest(reg.mirror_route(&n, ns).await?.unwrap_or(n), r),
        V2Path::Blob(n, d) => V2Path::Blob(reg.mirror_route(&n, ns).await?.unwrap_or(n), d),
        V2Path::Referrers(n, d) => V2Path::Referrers(reg.mirror_route(&n, ns).await?.unwrap_or(n), d),
        other => other,
    })
}

/// Serves a request that passed its check, acting for its caller.
async fn serve(
    reg: &Registry,
    auth: &RegistryAuth,
    granted: &Granted,
    route: V2Path,
    parts: &http::request::Parts,
    body: Body,
) -> Answer {
    let q = query_pairs(parts.uri.query());
    let m = &parts.method;
    let h = &parts.headers;
    match (route, m.clone()) {
        (V2Path::Base, Method::GET | Method::HEAD) => Ok(json_response(json!({}), "application/json")),
        (V2Path::Catalog, Method::GET) => catalog(reg, auth, granted, &q).await,
        (V2Path::Tags(name), Method::GET) => tags(reg, &name, &q).await,
        (V2Path::Manifest(name, r), Method::GET | Method::HEAD) => {
            get_manifest(reg, &name, &r, h, m == Method::HEAD).await
        }
        (V2Path::Manifest(name, r), Method::PUT) => put_manifest(reg, &name, &r, h, body).await,
        (V2Path::Manifest(name, r), Method::DELETE) => {
            reg.delete_manifest(&name, &r).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        (V2Path::Blob(name, d), Method::GET | Method::HEAD) => get_blob(reg, &name, &d, h, m == Method::HEAD).await,
        (V2Path::Blob(name, d), Method::DELETE) => {
            reg.delete_blob(&name, &d).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        (V2Path::Uploads(name), Method::POST) => start_upload(reg, auth, granted, &name, &q, body).await,
        (V2Path::Upload(name, id), Method::GET) => {
            let size = reg.upload_status(&name, id).await?;
            Ok(upload_progress(StatusCode::NO_CONTENT, &name, id, size))
        }
        (V2Path::Upload(name, id), Method::PATCH) => {
            let start = match h.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) {
                None => None,
                Some(v) => Some(
                    parse_content_range(v)
                        .ok_or_else(|| {
                            OciError::http(HttpAnswer::UploadRangeInvalid, "Content-Range must be <start>-<end>")
                        })?
                        .0,
                ),
            };
            let size = reg.upload_chunk(&name, id, start, body_stream(body)).await?;
            Ok(upload_progress(StatusCode::ACCEPTED, &name, id, size))
        }
        (V2Path::Upload(name, id), Method::PUT) => {
            let digest = required_digest(&q)?;
            reg.finish_upload(&name, id, &digest, body_stream(body)).await?;
            Ok(blob_created(&name, &digest))
        }
        (V2Path::Upload(name, id), Method::DELETE) => {
            reg.cancel_upload(&name, id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (V2Path::Referrers(name, d), Method::GET) => referrers(reg, &name, &d, &q).await,
        (_, m) => Err(unsupported(&m)),
    }
}

fn required_digest(q: &[(String, String)]) -> Result<Digest, OciError> {
    let d = param(q, "digest")
        .ok_or_else(|| RegistryError::DigestInvalid("the digest query parameter is required".into()))?;
    Ok(Digest::parse(d).map_err(|e| RegistryError::DigestInvalid(e.to_string()))?)
}

fn link(path: &str, n: usize, last: &str) -> HeaderValue {
    let q = serde_urlencoded::to_string([("n", n.to_string()), ("last", last.to_owned())]).unwrap_or_default();
    hv(&format!("<{path}?{q}>; rel=\"next\""))
}

async fn catalog(reg: &Registry, auth: &RegistryAuth, who: &Granted, q: &[(String, String)]) -> Answer {
    let n = page_size(q)?;
    let last = page_after(q, RepoName::parse)?;
    let view = match auth.mode {
        AuthMode::Open => None,
        _ => Some(
            auth.rules
                .catalog_view(&who.identity)
                .await
                .map_err(RegistryError::from)?,
        ),
    };
    let page = reg
        .catalog(n, last.as_ref(), |d| view.as_ref().is_none_or(|v| v.sees(d)))
        .await?;
    let names: Vec<&str> = page.repositories.iter().map(|r| r.as_str()).collect();
    let mut r = json_response(json!({ "repositories": names }), "application/json");
    if let (true, Some(n), Some(l)) = (page.more, n, names.last()) {
        r.headers_mut().insert(header::LINK, link("/v2/_catalog", n, l));
    }
    Ok(r)
}

async fn tags(reg: &Registry, name: &RepoName, q: &[(String, String)]) -> Answer {
    let n = page_size(q)?;
    let last = page_after(q, Tag::parse)?;
    let page = reg.tags(name, n, last.as_ref()).await?;
    let tags: Vec<&str> = page.tags.iter().map(|t| t.as_str()).collect();
    let mut r = json_response(json!({ "name": name.as_str(), "tags": tags }), "application/json");
    if let (true, Some(n), Some(l)) = (page.more, n, tags.last()) {
        r.headers_mut()
            .insert(header::LINK, link(&format!("/v2/{name}/tags/list"), n, l));
    }
    Ok(r)
}

async fn get_manifest(reg: &Registry, name: &RepoName, reference: &Reference, h: &HeaderMap, head: bool) -> Answer {
    let accept = Accept::from_values(h.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()));
    let m = reg.manifest(name, reference, &accept).await?;
    let mut r = Response::new(if head { Body::empty() } else { Body::from(m.bytes) });
    let hs = r.headers_mut();
    hs.insert(header::CONTENT_TYPE, hv(&m.media_type));
    hs.insert(header::CONTENT_LENGTH, hv(&m.size.to_string()));
    hs.insert(CONTENT_DIGEST, hv(m.digest.as_str()));
    hs.insert(header::ETAG, hv(&format!("\"{}\"", m.digest)));
    Ok(r)
}

async fn put_manifest(reg: &Registry, name: &RepoName, reference: &Reference, h: &HeaderMap, body: Body) -> Answer {
    let too_big = || {
        OciError::from(RegistryError::ManifestInvalid(format!(
            "manifest larger than {MAX_MANIFEST_BYTES} bytes"
        )))
    };
    if let Some(len) = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > MAX_MANIFEST_BYTES as u64 {
            return Err(too_big());
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| too_big())?;
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(MediaType::from_request);
    let pushed = reg.put_manifest(name, reference, ct.as_ref(), bytes).await?;
    let mut r = empty(StatusCode::CREATED);
    let hs = r.headers_mut();
    hs.insert(header::LOCATION, hv(&format!("/v2/{name}/manifests/{}", pushed.digest)));
    hs.insert(CONTENT_DIGEST, hv(pushed.digest.as_str()));
    if let Some(s) = pushed.subject {
        hs.insert(OCI_SUBJECT, hv(s.as_str()));
    }
    Ok(r)
}

async fn get_blob(reg: &Registry, name: &RepoName, d: &Digest, h: &HeaderMap, head: bool) -> Answer {
    if head {
        let size = reg.blob_size(name, d).await?;
        let mut r = Response::new(Body::empty());
        let hs = r.headers_mut();
        hs.insert(header::CONTENT_LENGTH, hv(&size.to_string()));
        hs.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        hs.insert(CONTENT_DIGEST, hv(d.as_str()));
        hs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        return Ok(r);
    }
    let range_header = h.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = reg
        .blob(name, d, |size| match parse_range(range_header.as_deref(), size) {
            RangeAnswer::Full => Ok(None),
            RangeAnswer::Partial(r) => Ok(Some(r)),
            RangeAnswer::Unsatisfiable => Err(RegistryError::RangeNotSatisfiable { size }),
        })
        .await?;
    match body {
        BlobBody::Redirect(url) => {
            let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
            r.headers_mut().insert(header::LOCATION, hv(&url));
            r.headers_mut().insert(CONTENT_DIGEST, hv(d.as_str()));
            Ok(r)
        }
        BlobBody::Stream(reader) => {
            let (status, len) = match reader.range {
                Some(rg) => (StatusCode::PARTIAL_CONTENT, rg.len()),
                None => (StatusCode::OK, reader.size),
            };
            let mut r = Response::new(Body::from_stream(reader.body));
            *r.status_mut() = status;
            let hs = r.headers_mut();
            hs.insert(header::CONTENT_LENGTH, hv(&len.to_string()));
            hs.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            hs.insert(CONTENT_DIGEST, hv(d.as_str()));
            hs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            hs.insert(header::ETAG, hv(&format!("\"{d}\"")));
            if let Some(rg) = reader.range {
                hs.insert(
                    header::CONTENT_RANGE,
                    hv(&format!("bytes {}-{}/{}", rg.start, rg.end, reader.size)),
                );
            }
            Ok(r)
        }
    }
}

fn blob_created(name: &RepoName, d: &Digest) -> Response {
    let mut r = empty(StatusCode::CREATED);
    r.headers_mut()
        .insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{d}")));
    r.headers_mut().insert(CONTENT_DIGEST, hv(d.as_str()));
    r
}

fn upload_progress(status: StatusCode, name: &RepoName, id: uuid::Uuid, size: u64) -> Response {
    let mut r = empty(status);
    let hs = r.headers_mut();
    hs.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/uploads/{id}")));
    hs.insert(header::RANGE, hv(&format!("0-{}", size.saturating_sub(1))));
    hs.insert(UPLOAD_UUID, hv(&id.to_string()));
    r
}

async fn start_upload(
    reg: &Registry,
    auth: &RegistryAuth,
    who: &Granted,
    name: &RepoName,
    q: &[(String, String)],
    body: Body,
) -> Answer {
    let digest = match param(q, "digest") {
        Some(_) => Some(required_digest(q)?),
        None => None,
    };
    let mount = match param(q, "mount") {
        None => None,
        Some(m) => {
            let d = Digest::parse(m).map_err(|e| RegistryError::DigestInvalid(e.to_string()))?;
            let from = match param(q, "from") {
                None => None,
                Some(f) => Some(RepoName::parse(f).map_err(|e| RegistryError::NameInvalid(e.to_string()))?),
            };
            // mount only from where the caller may pull; otherwise it is an ordinary upload
            let from = match from {
                Some(f) if who.may_pull(auth, &f).await => Some(f),
                _ => None,
            };
            Some((d, from))
        }
    };
    match reg.start_upload(name, digest, mount, body_stream(body)).await? {
        UploadStart::Created(d) => Ok(blob_created(name, &d)),
        UploadStart::Session(id) => Ok(upload_progress(StatusCode::ACCEPTED, name, id, 0)),
    }
}

async fn referrers(reg: &Registry, name: &RepoName, d: &Digest, q: &[(String, String)]) -> Answer {
    let filter = param(q, "artifactType").and_then(MediaType::from_request);
    let list = reg.referrers(name, d, filter.as_ref()).await?;
    let manifests: Vec<serde_json::Value> = list
        .into_iter()
        .map(|r| {
            let mut v = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(a) = r.artifact_type {
                v["artifactType"] = json!(a);
            }
            if !r.annotations.is_empty() {
                v["annotations"] = json!(r.annotations);
            }
            v
        })
        .collect();
    let mut r = json_response(
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }),
        OCI_INDEX,
    );
    if filter.is_some() {
        r.headers_mut()
            .insert(OCI_FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
    }
    Ok(r)
}

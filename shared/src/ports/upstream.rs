//! The upstream port: what a sync (and an on-demand pull) asks of the registry a remote names.
//!
//! One [`Upstream`] talks to one repository of one registry with one set of credentials; an
//! [`UpstreamFactory`] builds it from an [`UpstreamConfig`]. The adapter owns the wire
//! details (authentication challenges, redirects, retries, rate limits); callers see bytes,
//! media types, digests and a typed [`UpstreamError`] that keeps the URL and status for task
//! messages.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;

use super::ByteStream;
use crate::domain::{Digest, RepoName};

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
    /// Identifies the settings for client caching (a remote's id, its last update and a digest
    /// of its proxy and TLS settings).
    pub key: String,
    /// The registry's base URL (`https://registry.example`), without `/v2`.
    pub url: String,
    /// The repository name upstream, as the remote states it (`alpine`, `org/app`).
    pub upstream_name: RepoName,
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
    /// The HTTP proxy every request goes through; `None` leaves the environment's
    /// `HTTP_PROXY` / `HTTPS_PROXY` in force.
    pub proxy: Option<UpstreamProxy>,
    /// Extra trust and a client certificate for TLS to the upstream.
    pub tls: UpstreamTls,
}

/// An HTTP forward proxy (Pulp's `proxy_url`, `proxy_username`, `proxy_password`). Every
/// request of the client goes through it (registry, token realm, sigstore lookaside, redirect
/// targets): plain `http` requests in absolute form, `https` ones in a `CONNECT` tunnel.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamProxy {
    /// `http://host:port` or `https://host:port`. Credentials in it (`user:pass@`,
    /// percent-encoded) are used when `username` is unset.
    pub url: String,
    /// Basic proxy credentials (`Proxy-Authorization`).
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match url::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.to_string()
            }
            Err(_) => "(not a URL)".into(),
        };
        f.debug_struct("UpstreamProxy")
            .field("url", &url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

/// TLS settings beyond `tls_validation`, as PEM text (Pulp's `ca_cert`, `client_cert`,
/// `client_key`). Blank values count as unset.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    /// One or more CA certificates trusted in addition to the built-in roots.
    pub ca_cert: Option<String>,
    /// The client certificate (chain) presented when the upstream asks for one; it may hold
    /// the private key too when `client_key` is unset.
    pub client_cert: Option<String>,
    /// The client certificate's private key, unencrypted: PKCS#8 (`PRIVATE KEY`), PKCS#1
    /// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    pub client_key: Option<String>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca_cert", &self.ca_cert.as_ref().map(|c| c.len()))
            .field("client_cert", &self.client_cert.as_ref().map(|c| c.len()))
            .field("client_key", &self.client_key.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why a remote's TLS settings cannot be used: the field at fault and a message that never
/// quotes a private key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsSettingError {
    pub field: &'static str,
    pub message: String,
}

impl TlsSettingError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        TlsSettingError {
            field,
            message: message.into(),
        }
    }
}

/// One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, …) and its DER bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
    /// An RFC 1421 `Proc-Type: 4,ENCRYPTED` header was present (an OpenSSL encrypted key).
    pub encrypted: bool,
}

impl fmt::Debug for PemBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PemBlock({}, {} bytes)", self.label, self.der.len())
    }
}

impl PemBlock {
    /// The block as PEM text (64 base64 characters a line).
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = format!("-----BEGIN {}-----\n", self.label);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {}-----\n", self.label));
        out
    }
}

/// The PEM blocks of `text` in order. Text outside the blocks (comments, `openssl x509 -text`
/// output) is ignored; a block without its `END` line or with a body that is not base64 is an
/// error.
pub fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut encrypted = false;
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.starts_with("-----") {
                return Err(format!("the {label} block has no {end} line"));
            }
            if let Some((name, value)) = l.split_once(':') {
                // RFC 1421 headers (an OpenSSL encrypted key's Proc-Type and DEK-Info)
                if name.trim().eq_ignore_ascii_case("Proc-Type") && value.contains("ENCRYPTED") {
                    encrypted = true;
                }
                continue;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(format!("the {label} block has no {end} line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| format!("the {label} block is not valid base64"))?;
        if der.is_empty() {
            return Err(format!("the {label} block is empty"));
        }
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
            encrypted,
        });
    }
    Ok(blocks)
}

/// One DER element: its tag, its content and what follows it. `None` when malformed.
fn der_element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Whether `der` has the shape of an X.509 certificate: a SEQUENCE of the to-be-signed
/// SEQUENCE, the algorithm SEQUENCE and the signature BIT STRING, and nothing after it.
fn looks_like_certificate(der: &[u8]) -> bool {
    let Some((0x30, body, [])) = der_element(der) else {
        return false;
    };
    let Some((0x30, _, rest)) = der_element(body) else {
        return false;
    };
    let Some((0x30, _, rest)) = der_element(rest) else {
        return false;
    };
    matches!(der_element(rest), Some((0x03, _, [])))
}

/// Whether `der` has the shape of a private key (PKCS#8, PKCS#1 and SEC1 all start with a
/// SEQUENCE whose first element is the version INTEGER).
fn looks_like_private_key(der: &[u8]) -> bool {
    let Some((0x30, body, [])) = der_element(der) else {
        return false;
    };
    matches!(der_element(body), Some((0x02, _, _)))
}

const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];
const KEY_KINDS: &str =
    "an unencrypted PEM private key (PKCS#8 \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")";

/// The parsed TLS material a client is built from.
#[derive(Default)]
pub struct TlsMaterial {
    /// Extra trusted CA certificates (DER).
    pub roots: Vec<Vec<u8>>,
    /// The client certificate chain and its private key, when client authentication is set.
    pub identity: Option<(Vec<PemBlock>, PemBlock)>,
}

impl TlsMaterial {
    /// The client identity as one PEM text (certificates, then the key), as TLS libraries take it.
    pub fn identity_pem(&self) -> Option<String> {
        let (certs, key) = self.identity.as_ref()?;
        let mut pem: String = certs.iter().map(PemBlock::to_pem).collect();
        pem.push_str(&key.to_pem());
        Some(pem)
    }
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

/// The certificates of a PEM field: at least one, each shaped like an X.509 certificate.
fn certificates(field: &'static str, blocks: &[PemBlock]) -> Result<Vec<PemBlock>, TlsSettingError> {
    let certs: Vec<PemBlock> = blocks.iter().filter(|b| b.label == "CERTIFICATE").cloned().collect();
    if certs.is_empty() {
        return Err(TlsSettingError::new(
            field,
            "No certificate found: give one or more PEM certificates (-----BEGIN CERTIFICATE-----).",
        ));
    }
    if let Some(i) = certs.iter().position(|c| !looks_like_certificate(&c.der)) {
        return Err(TlsSettingError::new(
            field,
            format!("Certificate {} is not a DER X.509 certificate.", i + 1),
        ));
    }
    Ok(certs)
}

/// The one private key among `blocks`, if any; an error when it is encrypted, malformed or
/// not alone.
fn private_key(field: &'static str, blocks: &[PemBlock]) -> Result<Option<PemBlock>, TlsSettingError> {
    if blocks.iter().any(|b| b.label == "ENCRYPTED PRIVATE KEY" || b.encrypted) {
        return Err(TlsSettingError::new(
            field,
            format!("The private key is encrypted; give {KEY_KINDS}."),
        ));
    }
    let keys: Vec<&PemBlock> = blocks
        .iter()
        .filter(|b| KEY_LABELS.contains(&b.label.as_str()))
        .collect();
    match keys.as_slice() {
        [] => Ok(None),
        [k] if looks_like_private_key(&k.der) => Ok(Some((*k).clone())),
        [k] => Err(TlsSettingError::new(
            field,
            format!("The {} block is not a DER private key.", k.label),
        )),
        _ => Err(TlsSettingError::new(
            field,
            "More than one private key found; give one.",
        )),
    }
}

impl UpstreamTls {
    /// Whether no TLS setting is given.
    pub fn is_empty(&self) -> bool {
        set(&self.ca_cert).is_none() && set(&self.client_cert).is_none() && set(&self.client_key).is_none()
    }

    /// Parses the settings: `ca_cert` must hold at least one certificate; `client_cert` at
    /// least one certificate and a private key, in `client_key` or in `client_cert` itself;
    /// `client_key` is refused without `client_cert`. Certificates are checked for their DER
    /// shape here; the TLS library reads them fully when the client is built.
    pub fn parse(&self) -> Result<TlsMaterial, TlsSettingError> {
        let blocks = |field: &'static str, text: &str| {
            pem_blocks(text).map_err(|e| TlsSettingError::new(field, format!("Invalid PEM: {e}.")))
        };
        let mut material = TlsMaterial::default();
        if let Some(ca) = set(&self.ca_cert) {
            material.roots = certificates("ca_cert", &blocks("ca_cert", ca)?)?
                .into_iter()
                .map(|c| c.der)
                .collect();
        }
        let key = match set(&self.client_key) {
            Some(k) => {
                let found = private_key("client_key", &blocks("client_key", k)?)?;
                Some(found.ok_or_else(|| {
                    TlsSettingError::new("client_key", format!("No private key found: give {KEY_KINDS}."))
                })?)
            }
            None => None,
        };
        match set(&self.client_cert) {
            Some(c) => {
                let b = blocks("client_cert", c)?;
                let certs = certificates("client_cert", &b)?;
                let inline = private_key("client_cert", &b)?;
                let key = match (key, inline) {
                    (Some(k), _) => k,
                    (None, Some(k)) => k,
                    (None, None) => {
                        return Err(TlsSettingError::new(
                            "client_key",
                            "This field is required with client_cert (unless client_cert holds the private key).",
                        ))
                    }
                };
                material.identity = Some((certs, key));
            }
            None if key.is_some() => {
                return Err(TlsSettingError::new(
                    "client_cert",
                    "This field is required with client_key.",
                ));
            }
            None => {}
        }
        Ok(material)
    }

    /// [`parse`](Self::parse), for its verdict only.
    pub fn check(&self) -> Result<(), TlsSettingError> {
        self.parse().map(|_| ())
    }
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

    /// Where a GET of the blob leads when the registry does not serve the bytes itself: the
    /// URL of another origin (a CDN, an object store) it redirects to, which anyone holding
    /// it may fetch (Docker Hub, GHCR, Quay and registries on S3 do this). `None` when the
    /// registry serves the bytes (they are not read). `NotFound` when it has no such blob.
    async fn blob_elsewhere(&self, digest: &Digest) -> Result<Option<String>, UpstreamError> {
        let _ = digest;
        Ok(None)
    }

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        PemBlock {
            label: label.into(),
            der: der.to_vec(),
            encrypted: false,
        }
        .to_pem()
    }

    /// A CA certificate and a client certificate it signs, with the client's PKCS#8 key.
    fn material() -> (String, String, String) {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["berth".to_string()])
            .unwrap()
            .signed_by(&key, &*ca)
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    #[test]
    fn pem_blocks_skip_commentary_and_check_their_bodies() {
        let text = format!(
            "Certificate:\n    Data: …\n{}some words\n{}",
            pem("CERTIFICATE", b"\x30\x00"),
            pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00")
        );
        let blocks = pem_blocks(&text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].label.as_str(), &blocks[0].der[..]),
            ("CERTIFICATE", &b"\x30\x00"[..])
        );
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert_eq!(pem_blocks("nothing here").unwrap(), vec![]);

        let unterminated = "-----BEGIN CERTIFICATE-----\nMAA=\n";
        assert!(pem_blocks(unterminated)
            .unwrap_err()
            .contains("no -----END CERTIFICATE----- line"));
        let crossed = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END PRIVATE KEY-----\n";
        assert!(pem_blocks(crossed).is_err());
        let bad = "-----BEGIN CERTIFICATE-----\nM@A=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_blocks(bad).unwrap_err(),
            "the CERTIFICATE block is not valid base64"
        );
        let empty = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        assert!(pem_blocks(empty).is_err());
        let openssl_encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                                 DEK-Info: AES-128-CBC,00\n\nMAMCAQA=\n-----END RSA PRIVATE KEY-----\n";
        assert!(pem_blocks(openssl_encrypted).unwrap()[0].encrypted);
        // CRLF line ends and indentation are fine
        let crlf = pem("CERTIFICATE", b"\x30\x00").replace('\n', "\r\n  ");
        assert_eq!(pem_blocks(&crlf).unwrap()[0].der, b"\x30\x00");
    }

    #[test]
    fn der_shapes() {
        let (ca, cert, key) = material();
        let der = |t: &str| pem_blocks(t).unwrap().remove(0).der;
        assert!(looks_like_certificate(&der(&ca)) && looks_like_certificate(&der(&cert)));
        assert!(!looks_like_certificate(&der(&key)));
        assert!(looks_like_private_key(&der(&key)));
        let c = der(&cert);
        assert!(!looks_like_certificate(&c[..c.len() - 1]));
        assert!(!looks_like_certificate(&[c.clone(), vec![0]].concat()));
        assert!(!looks_like_certificate(b"\x30\x80\x00\x00"));
        assert!(!looks_like_private_key(b"\x30\x03\x04\x01\x00"));
        assert!(der_element(b"\x30\x85\x01\x00\x00\x00\x00").is_none());
    }

    #[test]
    fn tls_settings_parse_or_name_the_field() {
        let (ca, cert, key) = material();
        let tls = |ca: Option<&str>, cert: Option<&str>, key: Option<&str>| UpstreamTls {
            ca_cert: ca.map(str::to_owned),
            client_cert: cert.map(str::to_owned),
            client_key: key.map(str::to_owned),
        };
        let field = |t: UpstreamTls| t.check().unwrap_err().field;

        // nothing, or blanks, is nothing
        assert!(tls(Some(" "), Some(""), Some("\n")).is_empty());
        let m = tls(Some(" "), Some(""), Some("\n")).parse().unwrap();
        assert!(m.roots.is_empty() && m.identity.is_none());

        // a bundle of CAs; a client certificate with its key, apart or together
        let m = tls(Some(&format!("{ca}{cert}")), Some(&cert), Some(&key))
            .parse()
            .unwrap();
        assert_eq!(m.roots.len(), 2);
        let identity = m.identity_pem().unwrap();
        assert!(identity.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(identity.ends_with("-----END PRIVATE KEY-----\n"));
        assert_eq!(pem_blocks(&identity).unwrap().len(), 2);
        assert!(tls(None, Some(&format!("{cert}{key}")), None)
            .parse()
            .unwrap()
            .identity
            .is_some());
        // PKCS#1 and SEC1 labels are taken as they are
        for label in ["RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let k = pem(label, b"\x30\x03\x02\x01\x01");
            let m = tls(None, Some(&cert), Some(&k)).parse().unwrap();
            assert_eq!(m.identity.unwrap().1.label, label);
        }

        assert_eq!(field(tls(Some("junk"), None, None)), "ca_cert");
        assert_eq!(field(tls(Some(&key), None, None)), "ca_cert");
        assert_eq!(
            field(tls(Some(&pem("CERTIFICATE", b"\x30\x00")), None, None)),
            "ca_cert"
        );
        assert_eq!(field(tls(None, Some(&cert), None)), "client_key");
        assert_eq!(field(tls(None, None, Some(&key))), "client_cert");
        assert_eq!(field(tls(None, Some(&key), Some(&key))), "client_cert");
        assert_eq!(field(tls(None, Some(&cert), Some(&cert))), "client_key");
        assert_eq!(
            field(tls(None, Some(&cert), Some(&format!("{key}{key}")))),
            "client_key"
        );
        let encrypted = pem("ENCRYPTED PRIVATE KEY", b"\x30\x00");
        let e = tls(None, Some(&cert), Some(&encrypted)).check().unwrap_err();
        assert_eq!(e.field, "client_key");
        assert!(e.message.contains("encrypted"), "{e}");
        let openssl = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n\
                       MAMCAQE=\n-----END EC PRIVATE KEY-----\n";
        assert!(tls(None, Some(&cert), Some(openssl))
            .check()
            .unwrap_err()
            .message
            .contains("encrypted"));
        // messages never quote the key
        let broken = key.replace("-----END PRIVATE KEY-----", "");
        let e = tls(None, Some(&cert), Some(&broken)).check().unwrap_err();
        assert!(!e.to_string().contains(key.lines().nth(1).unwrap()), "{e}");
    }
}

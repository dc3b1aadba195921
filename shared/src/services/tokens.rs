//! Registry tokens: ES256-signed JWTs as the Docker token protocol uses them, with the claims
//! `access`, `aud`, `exp`, `iat`, `iss`, `jti`, `nbf`, `sub`, and who may get which access.
//!
//! Verification accepts exactly `ES256` with this key's `kid` (so `none` and every other
//! algorithm are refused), then checks issuer, audience, expiry and not-before.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The token issuer.
pub const ISSUER: &str = "berth-token-service";

/// The signing key and its libtrust-style key id.
pub struct TokenKey {
    signing: SigningKey,
    verifying: VerifyingKey,
    kid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid signing key: {0}")]
    Invalid(String),
}

/// base32 (RFC 4648, no padding) of `data`.
fn base32(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl TokenKey {
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let verifying = *signing.verifying_key();
        // libtrust key id: the first 240 bits of sha256(DER SubjectPublicKeyInfo), base32, in
        // 12 groups of 4 separated by ':'
        let der = verifying
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let hash = sha2::Sha256::digest(&der);
        let b32 = base32(&hash[..30]);
        let kid = b32
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        TokenKey {
            signing,
            verifying,
            kid,
        }
    }

    /// The key with this secret scalar, or `None` when the bytes are not a valid scalar.
    pub fn from_scalar_bytes(bytes: &[u8; 32]) -> Option<Self> {
        SigningKey::from_bytes(bytes.into()).ok().map(Self::from_signing)
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_signing)
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// One grant: `{"type": "repository", "name": "library/alpine", "actions": ["pull"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub access: Vec<Access>,
    /// Set on a refresh token (and only there): the fingerprint of the password its user had
    /// when it was issued. A refresh token grants nothing on the registry; `/token` trades it
    /// for access tokens while the user exists with that password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

impl Claims {
    /// Whether the token grants `action` on `kind:name` (`*` grants everything).
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == kind && a.name == name && a.actions.iter().any(|x| x == action || x == "*"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token issued by someone else")]
    Issuer,
    #[error("token meant for another service")]
    Audience,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYet,
    #[error("not a refresh token")]
    NotRefresh,
    #[error("a refresh token grants no access by itself")]
    Refresh,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Issues and verifies tokens.
pub struct Tokens {
    key: TokenKey,
    pub lifetime: Duration,
    /// sha256(token) → claims of tokens whose signature was verified: a client sends the same
    /// token with every request of a pull, and an ECDSA verification costs far more than the
    /// rest of a manifest GET. Expiry and audience are still checked on every use.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Claims>>,
}

const VERIFIED_CACHE: usize = 4096;

/// How long a refresh token (`offline_token=true`, `access_type=offline`) is good for.
pub const REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Clock skew tolerated on `nbf` and `exp`.
const LEEWAY: i64 = 30;

impl Tokens {
    pub fn new(key: TokenKey, lifetime: Duration) -> Self {
        Tokens {
            key,
            lifetime,
            verified: Default::default(),
        }
    }

    /// Signs claims for `sub` (empty for anonymous) and `aud`.
    pub fn issue(&self, sub: &str, aud: &str, access: Vec<Access>) -> (String, Claims) {
        self.issue_at(sub, aud, access, chrono::Utc::now().timestamp())
    }

    /// Signs claims issued at `now` (seconds since the epoch).
    pub fn issue_at(&self, sub: &str, aud: &str, access: Vec<Access>, now: i64) -> (String, Claims) {
        self.sign(Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: aud.into(),
            exp: now + self.lifetime.as_secs() as i64,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
            refresh: None,
        })
    }

    /// A refresh token for user `sub` of service `aud`, tied to the fingerprint of the user's
    /// password: good for [`REFRESH_LIFETIME`] from `now`, or until the password changes or
    /// the user is deleted, whichever comes first.
    pub fn issue_refresh_at(&self, sub: &str, aud: &str, fingerprint: &str, now: i64) -> String {
        self.sign(Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: aud.into(),
            exp: now + REFRESH_LIFETIME.as_secs() as i64,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access: Vec::new(),
            refresh: Some(fingerprint.into()),
        })
        .0
    }

    /// Verifies a refresh token for service `aud` at `now`: its user and the fingerprint of
    /// the password it was issued under. An access token is no refresh token.
    pub fn verify_refresh_at(&self, token: &str, aud: &str, now: i64) -> Result<(String, String), TokenError> {
        let c = self.verify_at(token, aud, now)?;
        match c.refresh {
            Some(fingerprint) if !c.sub.is_empty() => Ok((c.sub, fingerprint)),
            _ => Err(TokenError::NotRefresh),
        }
    }

    fn sign(&self, claims: Claims) -> (String, Claims) {
        let header = Header {
            alg: "ES256".into(),
            typ: Some("JWT".into()),
            kid: Some(self.key.kid.clone()),
        };
        let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let c = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let input = format!("{h}.{c}");
        let sig: Signature = self.key.signing.sign(input.as_bytes());
        (format!("{input}.{}", B64.encode(sig.to_bytes())), claims)
    }

    /// Verifies a token for service `aud` at `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, aud: &str, now: i64) -> Result<Claims, TokenError> {
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let cached = self.verified.lock().ok().and_then(|c| c.get(&key).cloned());
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = self.verify_signature(token)?;
                if let Ok(mut cache) = self.verified.lock() {
                    if cache.len() >= VERIFIED_CACHE {
                        cache.retain(|_, v| v.exp + LEEWAY >= now);
                        if cache.len() >= VERIFIED_CACHE {
                            cache.clear();
                        }
                    }
                    cache.insert(key, c.clone());
                }
                c
            }
        };
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer);
        }
        if claims.aud != aud {
            return Err(TokenError::Audience);
        }
        if claims.exp + LEEWAY < now {
            return Err(TokenError::Expired);
        }
        if claims.nbf - LEEWAY > now {
            return Err(TokenError::NotYet);
        }
        Ok(claims)
    }

    /// Checks the header and signature and decodes the claims.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "ES256" || header.kid.as_deref().is_some_and(|k| k != self.key.kid) {
            return Err(TokenError::Algorithm);
        }
        let sig_bytes = B64.decode(s).map_err(|_| TokenError::Signature)?;
        let sig = Signature::from_slice(&sig_bytes).map_err(|_| TokenError::Signature)?;
        self.key
            .verifying
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        Ok(claims)
    }

    /// Verifies an access token (a refresh token is refused) for service `aud`, now.
    pub fn verify(&self, token: &str, aud: &str) -> Result<Claims, TokenError> {
        let c = self.verify_at(token, aud, chrono::Utc::now().timestamp())?;
        if c.refresh.is_some() {
            return Err(TokenError::Refresh);
        }
        Ok(c)
    }

    /// [`Tokens::verify_refresh_at`] now.
    pub fn verify_refresh(&self, token: &str, aud: &str) -> Result<(String, String), TokenError> {
        self.verify_refresh_at(token, aud, chrono::Utc::now().timestamp())
    }

    /// [`Tokens::issue_refresh_at`] now.
    pub fn issue_refresh(&self, sub: &str, aud: &str, fingerprint: &str) -> String {
        self.issue_refresh_at(sub, aud, fingerprint, chrono::Utc::now().timestamp())
    }
}

/// A parsed `scope` parameter: `repository:<name>:<actions>` or `registry:catalog:*`.
/// `None` for strings that don't parse (they are granted nothing).
pub fn parse_scope(s: &str) -> Option<Access> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() || actions.is_empty() {
        return None;
    }
    let actions: Vec<String> = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    match kind {
        "repository" if crate::domain::RepoName::parse(name).is_ok() => {}
        "registry" if name == "catalog" => {}
        _ => return None,
    }
    Some(Access {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(TokenKey::generate(), Duration::from_secs(300))
    }

    fn access(name: &str, actions: &[&str]) -> Vec<Access> {
        vec![Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }]
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_access() {
        let t = tokens();
        let (jwt, claims) = t.issue("admin", "reg:5000", access("a/b", &["pull", "push"]));
        let got = t.verify(&jwt, "reg:5000").unwrap();
        assert_eq!(got, claims);
        assert!(got.allows("repository", "a/b", "push"));
        assert!(!got.allows("repository", "a/c", "pull"));
        assert_eq!(got.exp - got.iat, 300);
        assert_eq!(t.key.kid().split(':').count(), 12);
        // the key survives a PEM round trip
        let again = TokenKey::from_pem(&t.key.to_pem().unwrap()).unwrap();
        assert_eq!(again.kid(), t.key.kid());
        assert_eq!(
            Tokens::new(again, Duration::from_secs(300))
                .verify(&jwt, "reg:5000")
                .unwrap(),
            claims
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let t = tokens();
        let (jwt, claims) = t.issue("admin", "reg", access("a", &["pull"]));
        assert_eq!(t.verify(&jwt, "other"), Err(TokenError::Audience));
        assert_eq!(t.verify_at(&jwt, "reg", claims.exp + 100), Err(TokenError::Expired));
        assert_eq!(t.verify_at(&jwt, "reg", claims.nbf - 100), Err(TokenError::NotYet));
        // another key's token
        let (foreign, _) = tokens().issue("admin", "reg", access("a", &["pull"]));
        assert!(matches!(
            t.verify(&foreign, "reg"),
            Err(TokenError::Algorithm | TokenError::Signature)
        ));
        // tampered claims
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut c: Claims = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        c.access = access("a", &["pull", "push"]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert_eq!(t.verify(&forged, "reg"), Err(TokenError::Signature));
        // alg none
        let none = format!("{}.{}.", B64.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert_eq!(t.verify(&none, "reg"), Err(TokenError::Algorithm));
        let hs = format!("{}.{}.{}", B64.encode(br#"{"alg":"HS256"}"#), parts[1], parts[2]);
        assert_eq!(t.verify(&hs, "reg"), Err(TokenError::Algorithm));
        // wrong issuer, signed with the right key
        let mut c2 = claims.clone();
        c2.iss = "someone-else".into();
        let h = B64.encode(br#"{"alg":"ES256"}"#);
        let body = B64.encode(serde_json::to_vec(&c2).unwrap());
        let sig: Signature = t.key.signing.sign(format!("{h}.{body}").as_bytes());
        let wrong_iss = format!("{h}.{body}.{}", B64.encode(sig.to_bytes()));
        assert_eq!(t.verify(&wrong_iss, "reg"), Err(TokenError::Issuer));
        for junk in ["", "a.b", "a.b.c.d", "!!!.???.***", &format!("{}.x.y", parts[0])] {
            assert!(t.verify(junk, "reg").is_err(), "{junk}");
        }
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            parse_scope("repository:library/alpine:pull,push").unwrap().actions,
            vec!["pull", "push"]
        );
        assert_eq!(parse_scope("registry:catalog:*").unwrap().name, "catalog");
        for bad in [
            "",
            "repository",
            "repository:x",
            "repository:UPPER:pull",
            "repository::pull",
            "foo:bar:baz",
            "repository:a:",
        ] {
            assert_eq!(parse_scope(bad), None, "{bad}");
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }
}

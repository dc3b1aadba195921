//! Secrets at rest: the fields of a remote that hold credentials (`password`,
//! `proxy_password`, `client_key`) are sealed with AES-256-GCM under the instance's field key
//! before they are written, and opened when read. A sealed value reads
//! `enc:v1:<base64 of nonce ‖ ciphertext ‖ tag>`; the remote's id and the field's name are its
//! associated data, so a sealed value cannot be moved to another remote or field. Values
//! written before a key was configured read as they are and are sealed on the next write.

use std::fmt;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::Digest as _;
use uuid::Uuid;

use super::Remote;
use crate::ports::StoreError;

const PREFIX: &str = "enc:v1:";

/// The key remote credentials are sealed with.
pub struct FieldKey {
    key: LessSafeKey,
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FieldKey(…)")
    }
}

impl FieldKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        #[allow(clippy::expect_used)] // a 32-byte key is always valid for AES-256
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes any 32-byte key");
        FieldKey {
            key: LessSafeKey::new(key),
        }
    }

    /// The key derived from a secret seed (the same in every function instance).
    pub fn from_seed(seed: &str) -> Self {
        let mut h = sha2::Sha256::new();
        h.update(b"berth field key\0");
        h.update(seed.as_bytes());
        Self::from_bytes(&h.finalize().into())
    }

    fn aad(owner: Uuid, field: &str) -> String {
        format!("{owner}/{field}")
    }

    pub fn seal(&self, owner: Uuid, field: &str, plain: &str) -> Result<String, StoreError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(Self::aad(owner, field).as_bytes()),
                &mut buf,
            )
            .map_err(|_| StoreError::other_msg("sealing a secret failed"))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The plain value; a value that is not sealed is returned as it is.
    pub fn open(&self, owner: Uuid, field: &str, stored: &str) -> Result<String, StoreError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let fail = || {
            StoreError::other_msg(format!(
                "cannot open the sealed {field} of {owner}: a different field key?"
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| fail())?;
        if raw.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(owner, field).as_bytes()), &mut buf)
            .map_err(|_| fail())?;
        String::from_utf8(plain.to_vec()).map_err(|_| fail())
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(v: &str) -> bool {
    v.starts_with(PREFIX)
}

type Field = fn(&mut Remote) -> &mut Option<String>;

/// The credential fields of a remote.
const FIELDS: [(&str, Field); 3] = [
    ("password", |r| &mut r.password),
    ("proxy_password", |r| &mut r.proxy_password),
    ("client_key", |r| &mut r.client_key),
];

/// Seals a remote's credentials for writing (with no key, leaves them as they are).
pub(crate) fn seal_remote(key: Option<&FieldKey>, r: &mut Remote) -> Result<(), StoreError> {
    let Some(key) = key else { return Ok(()) };
    let id = r.id;
    for (name, field) in FIELDS {
        if let Some(v) = field(r).as_mut() {
            if !is_sealed(v) {
                *v = key.seal(id, name, v)?;
            }
        }
    }
    Ok(())
}

/// Opens a remote's credentials after reading. A value that cannot be opened (the key
/// changed) is dropped with an error in the log: the remote then has no such credential.
pub(crate) fn open_remote(key: Option<&FieldKey>, r: &mut Remote) {
    let id = r.id;
    for (name, field) in FIELDS {
        let slot = field(r);
        let Some(v) = slot.as_ref() else { continue };
        if !is_sealed(v) {
            continue;
        }
        match key.map(|k| k.open(id, name, v)) {
            Some(Ok(plain)) => *slot = Some(plain),
            Some(Err(e)) => {
                tracing::error!(remote = %id, field = name, error = %e, "dropping a credential that cannot be opened");
                *slot = None;
            }
            None => {
                tracing::error!(remote = %id, field = name, "a sealed credential, but no field key is configured");
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let k = FieldKey::from_seed("seed");
        let id = Uuid::new_v4();
        let s = k.seal(id, "password", "hunter2").unwrap();
        assert!(is_sealed(&s) && !s.contains("hunter2"));
        assert_ne!(s, k.seal(id, "password", "hunter2").unwrap(), "a fresh nonce each time");
        assert_eq!(k.open(id, "password", &s).unwrap(), "hunter2");
        // bound to the remote and the field; another key cannot open it
        assert!(k.open(Uuid::new_v4(), "password", &s).is_err());
        assert!(k.open(id, "proxy_password", &s).is_err());
        assert!(FieldKey::from_seed("other").open(id, "password", &s).is_err());
        assert!(k.open(id, "password", "enc:v1:!!").is_err());
        assert!(k.open(id, "password", "enc:v1:AAAA").is_err());
        // a value written before sealing reads as it is
        assert_eq!(k.open(id, "password", "plain").unwrap(), "plain");
    }

    #[test]
    fn remotes_round_trip() {
        let k = FieldKey::from_seed("seed");
        let mut r = Remote::new("r", "https://x", crate::domain::RepoName::parse("y").unwrap());
        r.password = Some("pw".into());
        r.client_key = Some("-----BEGIN KEY-----".into());
        seal_remote(Some(&k), &mut r).unwrap();
        assert!(is_sealed(r.password.as_deref().unwrap()));
        assert!(is_sealed(r.client_key.as_deref().unwrap()));
        assert_eq!(r.proxy_password, None);
        let sealed = r.password.clone();
        seal_remote(Some(&k), &mut r).unwrap();
        assert_eq!(r.password, sealed, "sealing twice changes nothing");
        open_remote(Some(&k), &mut r);
        assert_eq!(r.password.as_deref(), Some("pw"));
        assert_eq!(r.client_key.as_deref(), Some("-----BEGIN KEY-----"));
        // the wrong key: the credential is dropped, not garbled
        seal_remote(Some(&k), &mut r).unwrap();
        open_remote(Some(&FieldKey::from_seed("other")), &mut r);
        assert_eq!(r.password, None);
    }
}

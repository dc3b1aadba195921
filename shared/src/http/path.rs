//! The `/v2` path parser. One wildcard route hands everything after `/v2/` here; names may be
//! nested (`library/alpine`), so the route is read from the right.

use uuid::Uuid;

use crate::domain::{Digest, DomainError, Reference, RepoName};
use crate::services::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Path {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    Uploads(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, Uuid),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

/// Why a path is not a `/v2` route.
#[derive(Debug)]
pub enum PathError {
    /// No route has this shape.
    NoRoute,
    /// The shape matched but a part is invalid.
    Invalid(RegistryError),
    /// A manifest route whose reference is neither a tag nor a digest. What that means
    /// depends on the method ([`BadReference::error`]), and the caller may not learn it before
    /// the repository's access check, so the name comes along.
    BadReference(BadReference),
}

/// A manifest route with a reference that does not parse.
#[derive(Debug)]
pub struct BadReference {
    pub name: RepoName,
    pub raw: String,
    pub error: DomainError,
}

impl BadReference {
    /// The error for a pull or delete (a manifest that cannot exist: `MANIFEST_UNKNOWN`) or
    /// for a push (`DIGEST_INVALID` for a malformed digest, else `MANIFEST_INVALID`).
    pub fn error(self, push: bool) -> RegistryError {
        match self.error {
            DomainError::InvalidDigest(d) if push => RegistryError::DigestInvalid(d),
            other if push => RegistryError::ManifestInvalid(other.to_string()),
            _ => RegistryError::ManifestUnknown(format!("invalid reference {:?}", self.raw)),
        }
    }
}

fn name(parts: &[&str]) -> Result<RepoName, PathError> {
    let joined = parts.join("/");
    RepoName::parse(&joined).map_err(|e| PathError::Invalid(RegistryError::NameInvalid(e.to_string())))
}

fn digest(s: &str) -> Result<Digest, PathError> {
    Digest::parse(s).map_err(|e| PathError::Invalid(RegistryError::DigestInvalid(e.to_string())))
}

/// Parses the part of the path after `/v2/` (raw, not percent-decoded: an encoded character
/// can never be part of a valid name, tag or digest).
pub fn parse(rest: &str) -> Result<V2Path, PathError> {
    if rest.is_empty() {
        return Ok(V2Path::Base);
    }
    if rest == "_catalog" {
        return Ok(V2Path::Catalog);
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let n = parts.len();
    if n >= 3 && parts[n - 2] == "tags" && parts[n - 1] == "list" {
        return Ok(V2Path::Tags(name(&parts[..n - 2])?));
    }
    if n >= 3 && parts[n - 2] == "manifests" {
        let name = name(&parts[..n - 2])?;
        let raw = parts[n - 1];
        return match Reference::parse(raw) {
            Ok(r) => Ok(V2Path::Manifest(name, r)),
            Err(error) => Err(PathError::BadReference(BadReference {
                name,
                raw: raw.to_owned(),
                error,
            })),
        };
    }
    if n >= 4 && parts[n - 3] == "blobs" && parts[n - 2] == "uploads" {
        let nm = name(&parts[..n - 3])?;
        if parts[n - 1].is_empty() {
            return Ok(V2Path::Uploads(nm));
        }
        let id = Uuid::parse_str(parts[n - 1]).map_err(|_| PathError::Invalid(RegistryError::BlobUploadUnknown))?;
        return Ok(V2Path::Upload(nm, id));
    }
    if n >= 3 && parts[n - 2] == "blobs" && parts[n - 1] == "uploads" {
        return Ok(V2Path::Uploads(name(&parts[..n - 2])?));
    }
    if n >= 3 && parts[n - 2] == "blobs" {
        return Ok(V2Path::Blob(name(&parts[..n - 2])?, digest(parts[n - 1])?));
    }
    if n >= 3 && parts[n - 2] == "referrers" {
        return Ok(V2Path::Referrers(name(&parts[..n - 2])?, digest(parts[n - 1])?));
    }
    Err(PathError::NoRoute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn parses_every_route() {
        let d = Digest::sha256_of(b"x");
        let id = Uuid::new_v4();
        assert_eq!(parse("").unwrap(), V2Path::Base);
        assert_eq!(parse("_catalog").unwrap(), V2Path::Catalog);
        assert_eq!(parse("a/b/tags/list").unwrap(), V2Path::Tags(n("a/b")));
        assert_eq!(
            parse("library/alpine/manifests/3.19").unwrap(),
            V2Path::Manifest(n("library/alpine"), r("3.19"))
        );
        assert_eq!(parse(&format!("x/blobs/{d}")).unwrap(), V2Path::Blob(n("x"), d.clone()));
        assert_eq!(parse("x/blobs/uploads/").unwrap(), V2Path::Uploads(n("x")));
        assert_eq!(parse("x/blobs/uploads").unwrap(), V2Path::Uploads(n("x")));
        assert_eq!(
            parse(&format!("x/y/blobs/uploads/{id}")).unwrap(),
            V2Path::Upload(n("x/y"), id)
        );
        assert_eq!(
            parse(&format!("x/referrers/{d}")).unwrap(),
            V2Path::Referrers(n("x"), d.clone())
        );
        // names may contain route words
        assert_eq!(
            parse("blobs/manifests/manifests/latest").unwrap(),
            V2Path::Manifest(n("blobs/manifests"), r("latest"))
        );
        assert_eq!(parse("tags/tags/list").unwrap(), V2Path::Tags(n("tags")));
    }

    #[test]
    fn rejects_tricks() {
        for bad in [
            "../etc/manifests/latest",
            "a/../b/manifests/latest",
            "a%2f..%2fb/manifests/latest",
            "A/manifests/latest",
            "/manifests/latest",
            "a//b/tags/list",
        ] {
            assert!(
                matches!(parse(bad), Err(PathError::Invalid(RegistryError::NameInvalid(_)))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("x/blobs/sha256:zz"),
            Err(PathError::Invalid(RegistryError::DigestInvalid(_)))
        ));
        assert!(parse("x/blobs/uploads/../../x").is_err());
        assert!(matches!(
            parse("x/blobs/uploads/not-a-uuid"),
            Err(PathError::Invalid(RegistryError::BlobUploadUnknown))
        ));
        assert!(matches!(parse("x"), Err(PathError::NoRoute)));
        // a bad reference: unknown to a pull, invalid to a push
        for (raw, push_error) in [("sha256:1234", "DigestInvalid"), ("-bad", "ManifestInvalid")] {
            let bad = |push| match parse(&format!("x/manifests/{raw}")) {
                Err(PathError::BadReference(b)) => {
                    assert_eq!(b.name, n("x"));
                    b.error(push)
                }
                other => panic!("{raw}: {other:?}"),
            };
            assert!(matches!(bad(false), RegistryError::ManifestUnknown(_)), "{raw}");
            let e = bad(true);
            assert!(format!("{e:?}").starts_with(push_error), "{raw}: {e:?}");
        }
        assert!(matches!(parse("x/whatever"), Err(PathError::NoRoute)));
    }

    proptest! {
        #[test]
        fn never_panics(s in "[a-z0-9/._:%-]{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn round_trips_valid_names(parts in proptest::collection::vec("[a-z0-9]{1,8}", 1..5), tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}") {
            let nm = parts.join("/");
            let p = parse(&format!("{nm}/manifests/{tag}")).unwrap();
            prop_assert_eq!(p, V2Path::Manifest(n(&nm), r(&tag)));
        }
    }
}

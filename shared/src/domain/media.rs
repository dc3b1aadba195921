//! Manifest media types, the media type a request names, and `Accept` negotiation.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `domain`: pure, no I/O.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The withdrawn OCI artifact manifest of the 1.1 release candidates.
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// The manifest media types Berth stores and serves.
pub const SUPPORTED_MANIFESTS: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED
}

/// The media type without parameters, lowercased, trimmed.
pub fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// A media type a request names (a manifest PUT's `Content-Type`, a referrers filter's
/// `artifactType`), kept exactly as sent: what a media type may be is decided where it is used
/// (manifest parsing compares its essence, a filter compares it whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType(String);

impl MediaType {
    /// The value of a header or parameter; none when it names no type (empty, or only
    /// parameters).
    pub fn from_request(value: &str) -> Option<Self> {
        (!essence(value).is_empty()).then(|| MediaType(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The media ranges a client accepts, from any number of `Accept` header values, each of
/// which may hold a comma-separated list (docker sends several lines; API gateways join them).
#[derive(Debug, Clone, Default)]
pub struct Accept {
    ranges: Vec<String>,
}

impl Accept {
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let ranges = values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(essence)
            .filter(|r| !r.is_empty())
            .collect();
        Accept { ranges }
    }

    /// Whether a manifest of `media_type` may be served to this client. No `Accept` at all
    /// (curl, simple scripts) and `*/*` accept everything.
    pub fn allows(&self, media_type: &str) -> bool {
        if self.ranges.is_empty() {
            return true;
        }
        let mt = essence(media_type);
        let family = mt.split('/').next().unwrap_or("");
        self.ranges
            .iter()
            .any(|r| r == "*/*" || *r == mt || r.strip_suffix("/*").is_some_and(|f| f == family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_joins_lines_and_lists() {
        let a = Accept::from_values([
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.index.v1+json; q=0.5, application/vnd.docker.distribution.manifest.list.v2+json",
        ]);
        assert!(a.allows(DOCKER_MANIFEST));
        assert!(a.allows(OCI_INDEX));
        assert!(a.allows(DOCKER_LIST));
        assert!(!a.allows(OCI_MANIFEST));
    }

    #[test]
    fn schema1_only_clients_get_nothing_modern() {
        let a = Accept::from_values([DOCKER_SCHEMA1_SIGNED]);
        for mt in SUPPORTED_MANIFESTS {
            assert!(!a.allows(mt));
        }
    }

    #[test]
    fn request_media_types_are_kept_as_sent() {
        let m = MediaType::from_request("application/vnd.OCI.image.manifest.v1+json; charset=x").unwrap();
        assert_eq!(m.as_str(), "application/vnd.OCI.image.manifest.v1+json; charset=x");
        assert_eq!(MediaType::from_request(""), None);
        assert_eq!(MediaType::from_request(" ; q=1"), None);
    }

    #[test]
    fn no_accept_or_wildcard_allows_all() {
        assert!(Accept::from_values([]).allows(OCI_MANIFEST));
        assert!(Accept::from_values(["*/*"]).allows(OCI_INDEX));
        assert!(Accept::from_values(["application/*"]).allows(OCI_INDEX));
    }
}

//! Manifest parsing and validation: OCI image manifests and indexes, Docker schema 2 manifests
//! and manifest lists, artifacts (`artifactType`, `subject`). Schema 1 is recognised and refused.

use std::collections::BTreeMap;

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::media::{self, essence};
use super::{Digest, DomainError};

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    Image,
    Index,
    Artifact,
}

/// A manifest's reference to a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorRef {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformRef {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What Berth needs to know of a manifest, extracted once when it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedManifest {
    pub media_type: String,
    pub kind: ManifestKind,
    /// The config blob (image manifests and artifacts).
    pub config: Option<DescriptorRef>,
    /// Layers (image manifests and artifacts).
    pub layers: Vec<DescriptorRef>,
    /// Child manifests (indexes).
    pub manifests: Vec<DescriptorRef>,
    pub subject: Option<DescriptorRef>,
    /// `artifactType`, or for image manifests without it, the config media type (as the
    /// referrers API reports it).
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

impl ParsedManifest {
    /// Every blob the manifest references (config first).
    pub fn blob_digests(&self) -> impl Iterator<Item = &Digest> {
        self.config.iter().chain(self.layers.iter()).map(|d| &d.digest)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
}

/// Parses and validates manifest bytes. `content_type` is the request's `Content-Type`, used
/// when the manifest has no `mediaType` field; when both are present they must agree.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, DomainError> {
    let invalid = |m: String| DomainError::InvalidManifest(m);
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(invalid(format!(
            "manifest is {} bytes, more than the {MAX_MANIFEST_BYTES} accepted",
            bytes.len()
        )));
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a JSON manifest: {e}")))?;
    let content_type = content_type.map(essence).filter(|c| !c.is_empty());
    let field = probe.media_type.as_deref().map(essence);
    let schema = probe.schema_version.as_ref().and_then(|v| v.as_u64());
    if schema == Some(1)
        || probe.fs_layers.is_some()
        || field.as_deref().is_some_and(media::is_schema1)
        || content_type.as_deref().is_some_and(media::is_schema1)
    {
        return Err(DomainError::Schema1);
    }
    if schema != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    let media_type = match (&field, &content_type) {
        (Some(f), Some(c)) if f != c && c != "application/json" => {
            return Err(invalid(format!("mediaType {f} does not match Content-Type {c}")))
        }
        (Some(f), _) => f.clone(),
        (None, Some(c)) if c != "application/json" => c.clone(),
        (None, _) => {
            if probe.manifests.is_some() {
                media::OCI_INDEX.to_owned()
            } else if probe.config.is_some() {
                media::OCI_MANIFEST.to_owned()
            } else {
                return Err(invalid("cannot tell the manifest's media type".into()));
            }
        }
    };
    if media_type == media::OCI_ARTIFACT_MANIFEST {
        return Err(invalid(
            "the OCI artifact manifest was withdrawn; use an image manifest with artifactType".into(),
        ));
    }
    if !media::SUPPORTED_MANIFESTS.contains(&media_type.as_str()) {
        return Err(invalid(format!("unsupported manifest media type {media_type}")));
    }
    if media::is_index(&media_type) {
        parse_index(bytes, media_type)
    } else {
        parse_image(bytes, media_type)
    }
}

fn descriptor(d: &oci_spec::image::Descriptor, what: &str) -> Result<DescriptorRef, DomainError> {
    let digest =
        Digest::parse(d.digest().as_ref()).map_err(|e| DomainError::InvalidManifest(format!("{what}: {e}")))?;
    let platform = d.platform().as_ref().map(|p| PlatformRef {
        os: p.os().to_string(),
        architecture: p.architecture().to_string(),
        variant: p.variant().clone(),
    });
    Ok(DescriptorRef {
        media_type: d.media_type().to_string(),
        digest,
        size: d.size(),
        platform,
    })
}

fn parse_image(bytes: &[u8], media_type: String) -> Result<ParsedManifest, DomainError> {
    let m: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| DomainError::InvalidManifest(format!("invalid image manifest: {e}")))?;
    let config = descriptor(m.config(), "config")?;
    let layers = m
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| descriptor(l, &format!("layers[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let subject = m.subject().as_ref().map(|s| descriptor(s, "subject")).transpose()?;
    let explicit_type = m.artifact_type().as_ref().map(|t| t.to_string());
    let config_type = config.media_type.clone();
    let is_image_config = config_type == media::OCI_IMAGE_CONFIG || config_type == media::DOCKER_CONFIG;
    let kind = if explicit_type.is_some() || !is_image_config {
        ManifestKind::Artifact
    } else {
        ManifestKind::Image
    };
    Ok(ParsedManifest {
        media_type,
        kind,
        artifact_type: explicit_type.or(Some(config_type)),
        config: Some(config),
        layers,
        manifests: Vec::new(),
        subject,
        annotations: m.annotations().clone().unwrap_or_default().into_iter().collect(),
    })
}

fn parse_index(bytes: &[u8], media_type: String) -> Result<ParsedManifest, DomainError> {
    let ix: ImageIndex =
        serde_json::from_slice(bytes).map_err(|e| DomainError::InvalidManifest(format!("invalid index: {e}")))?;
    let manifests = ix
        .manifests()
        .iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, &format!("manifests[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let subject = ix.subject().as_ref().map(|s| descriptor(s, "subject")).transpose()?;
    Ok(ParsedManifest {
        media_type,
        kind: ManifestKind::Index,
        config: None,
        layers: Vec::new(),
        manifests,
        subject,
        artifact_type: ix.artifact_type().as_ref().map(|t| t.to_string()),
        annotations: ix.annotations().clone().unwrap_or_default().into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> String {
        Digest::sha256_of(s.as_bytes()).to_string()
    }

    fn image(media_type: Option<&str>, config_type: &str) -> String {
        let mt = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{config_type}","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":5}}]}}"#,
            d("c"),
            d("l")
        )
    }

    #[test]
    fn parses_oci_and_docker_image_manifests() {
        let m = parse_manifest(
            image(Some(media::OCI_MANIFEST), media::OCI_IMAGE_CONFIG).as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blob_digests().count(), 2);
        let m = parse_manifest(
            image(Some(media::DOCKER_MANIFEST), media::DOCKER_CONFIG).as_bytes(),
            Some(media::DOCKER_MANIFEST),
        )
        .unwrap();
        assert_eq!(m.media_type, media::DOCKER_MANIFEST);
        // no mediaType field: Content-Type decides
        let m = parse_manifest(
            image(None, media::OCI_IMAGE_CONFIG).as_bytes(),
            Some(media::OCI_MANIFEST),
        )
        .unwrap();
        assert_eq!(m.media_type, media::OCI_MANIFEST);
    }

    #[test]
    fn parses_indexes_and_artifacts() {
        let ix = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":9,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST,
            d("m")
        );
        let m = parse_manifest(ix.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests[0].platform.as_ref().unwrap().architecture, "arm64");
        let art = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x.sbom","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{}","size":9}}}}"#,
            media::OCI_MANIFEST,
            media::OCI_EMPTY,
            d("{}"),
            media::OCI_MANIFEST,
            d("m")
        );
        let m = parse_manifest(art.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::Artifact);
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.sbom"));
        assert_eq!(m.subject.unwrap().digest.to_string(), d("m"));
    }

    #[test]
    fn refuses_schema1_and_nonsense() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(parse_manifest(s1.as_bytes(), None), Err(DomainError::Schema1));
        assert_eq!(
            parse_manifest(
                image(None, media::OCI_IMAGE_CONFIG).as_bytes(),
                Some(media::DOCKER_SCHEMA1_SIGNED)
            ),
            Err(DomainError::Schema1)
        );
        for bad in [
            "",
            "{",
            "[]",
            r#"{"schemaVersion":3}"#,
            r#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        ] {
            assert!(
                matches!(
                    parse_manifest(bad.as_bytes(), None),
                    Err(DomainError::InvalidManifest(_))
                ),
                "{bad:?}"
            );
        }
        // mediaType and Content-Type disagree
        assert!(parse_manifest(
            image(Some(media::OCI_MANIFEST), media::OCI_IMAGE_CONFIG).as_bytes(),
            Some(media::DOCKER_MANIFEST)
        )
        .is_err());
        // a bad digest inside
        let bad = image(Some(media::OCI_MANIFEST), media::OCI_IMAGE_CONFIG).replace(&d("l"), "sha256:abc");
        assert!(parse_manifest(bad.as_bytes(), None).is_err());
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(parse_manifest(&big, None).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_manifest(&bytes, None);
        }

        #[test]
        fn never_panics_on_mutated_manifests(pos in 0usize..400, byte in any::<u8>(), ct in prop::sample::select(vec![None, Some(media::OCI_MANIFEST), Some(media::DOCKER_LIST), Some("x/y")])) {
            let mut m = image(Some(media::OCI_MANIFEST), media::OCI_IMAGE_CONFIG).into_bytes();
            let i = pos % m.len();
            m[i] = byte;
            let _ = parse_manifest(&m, ct);
        }
    }
}

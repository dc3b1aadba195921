//! Test fixtures shared by integration tests: a real Debian `docker-registry` on a free
//! loopback port, filled with generated images through plain registry API pushes; and
//! [`http`], requests through a router in process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::domain::{media, Digest};
use serde_json::{json, Value};

#[cfg(feature = "upstream")]
pub mod cache;
pub mod http;
#[cfg(feature = "moto")]
pub mod moto;
pub mod oci;
pub mod pulp;
pub mod teams;

/// Where `docker-registry` is, or a panic saying how to install it (tests must not pass
/// silently without it).
fn registry_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("docker-registry"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for c in candidates
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new("/usr/bin/docker-registry")])
    {
        if c.is_file() {
            return c.to_owned();
        }
    }
    panic!(
        "docker-registry is not installed; these tests run a real upstream registry. \
         Install it with `apt-get install docker-registry` (./test.sh does)"
    );
}

/// A running `docker-registry serve`, stopped (by its own PID) when dropped.
pub struct DockerRegistry {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl DockerRegistry {
    pub async fn start() -> Self {
        let bin = registry_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let root = dir.path().join("data");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            root.display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = DockerRegistry {
            child,
            addr,
            dir,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = reg.http.get(reg.url("/v2/")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reg
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Pushes a blob (POST, then PUT with the digest).
    pub async fn push_blob(&self, name: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let r = self
            .http
            .post(self.url(&format!("/v2/{name}/blobs/uploads/")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "starting an upload");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let loc = if loc.starts_with("http") { loc } else { self.url(&loc) };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .put(format!("{loc}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "finishing an upload: {}",
            r.text().await.unwrap_or_default()
        );
        d
    }

    pub async fn push_manifest(&self, name: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Digest {
        let r = self
            .http
            .put(self.url(&format!("/v2/{name}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            201,
            "pushing {name}:{reference}: {}",
            r.text().await.unwrap_or_default()
        );
        Digest::sha256_of(bytes)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes (a layer stand-in).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What [`fill`] pushed.
pub struct Fixture {
    pub name: String,
    /// tag → (manifest bytes, media type)
    pub tags: Vec<(String, Vec<u8>, String)>,
    pub index: Digest,
    pub amd64: Digest,
    pub arm64: Digest,
    pub docker: Digest,
    pub signature: Digest,
    pub signature_tag: String,
    /// Every blob pushed (configs and layers).
    pub blobs: Vec<(Digest, Vec<u8>)>,
    /// Layers of the docker image.
    pub docker_layers: Vec<Digest>,
}

impl Fixture {
    pub fn manifest(&self, tag: &str) -> &[u8] {
        &self.tags.iter().find(|(t, ..)| t == tag).unwrap().1
    }
}

fn descriptor(media_type: &str, d: &Digest, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": d, "size": size})
}

/// Fills `name` with: a two-platform OCI index (`multi`, also `v1`) whose images share a
/// layer, a docker schema 2 image (`docker`, also `latest`), an image tagged `v2-rc`, and a
/// cosign-style signature artifact `sha256-<docker hex>.sig`.
pub async fn fill(reg: &DockerRegistry, name: &str) -> Fixture {
    const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    let mut blobs = Vec::new();
    let mut tags = Vec::new();
    let shared = noise(1, 300_000);
    let amd = noise(2, 150_000);
    let arm = noise(3, 120_000);
    let dock = noise(4, 90_000);
    let rc = noise(5, 1_000);
    for b in [&shared, &amd, &arm, &dock, &rc] {
        let d = reg.push_blob(name, b).await;
        blobs.push((d, b.clone()));
    }
    let d = |b: &[u8]| Digest::sha256_of(b);

    let image = |arch: &str, layers: Vec<&Vec<u8>>, config_type: &str, layer_type: &str, mt: &str| {
        let config = format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#);
        let m = json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": descriptor(config_type, &d(config.as_bytes()), config.len()),
            "layers": layers.iter().map(|l| descriptor(layer_type, &d(l), l.len())).collect::<Vec<_>>(),
        });
        (config.into_bytes(), serde_json::to_vec(&m).unwrap())
    };
    let (amd_cfg, amd_m) = image(
        "amd64",
        vec![&shared, &amd],
        media::OCI_IMAGE_CONFIG,
        OCI_LAYER,
        media::OCI_MANIFEST,
    );
    let (arm_cfg, arm_m) = image(
        "arm64",
        vec![&shared, &arm],
        media::OCI_IMAGE_CONFIG,
        OCI_LAYER,
        media::OCI_MANIFEST,
    );
    let (dock_cfg, dock_m) = image(
        "386",
        vec![&dock],
        media::DOCKER_CONFIG,
        DOCKER_LAYER,
        media::DOCKER_MANIFEST,
    );
    let (rc_cfg, rc_m) = image(
        "s390x",
        vec![&rc],
        media::OCI_IMAGE_CONFIG,
        OCI_LAYER,
        media::OCI_MANIFEST,
    );
    for c in [&amd_cfg, &arm_cfg, &dock_cfg, &rc_cfg] {
        let dg = reg.push_blob(name, c).await;
        blobs.push((dg, c.clone()));
    }
    let amd64 = reg
        .push_manifest(name, &d(&amd_m).to_string(), media::OCI_MANIFEST, &amd_m)
        .await;
    let arm64 = reg
        .push_manifest(name, &d(&arm_m).to_string(), media::OCI_MANIFEST, &arm_m)
        .await;
    let index_m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": amd64, "size": amd_m.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": media::OCI_MANIFEST, "digest": arm64, "size": arm_m.len(), "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }))
    .unwrap();
    let index = reg.push_manifest(name, "multi", media::OCI_INDEX, &index_m).await;
    reg.push_manifest(name, "v1", media::OCI_INDEX, &index_m).await;
    tags.push(("multi".to_string(), index_m.clone(), media::OCI_INDEX.to_string()));
    tags.push(("v1".to_string(), index_m.clone(), media::OCI_INDEX.to_string()));
    let docker = reg.push_manifest(name, "docker", media::DOCKER_MANIFEST, &dock_m).await;
    reg.push_manifest(name, "latest", media::DOCKER_MANIFEST, &dock_m).await;
    tags.push(("docker".to_string(), dock_m.clone(), media::DOCKER_MANIFEST.to_string()));
    tags.push(("latest".to_string(), dock_m.clone(), media::DOCKER_MANIFEST.to_string()));
    reg.push_manifest(name, "v2-rc", media::OCI_MANIFEST, &rc_m).await;
    tags.push(("v2-rc".to_string(), rc_m.clone(), media::OCI_MANIFEST.to_string()));

    // a cosign-style signature of the docker image
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/{name}"}},"image":{{"docker-manifest-digest":"{docker}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        reg.addr
    );
    let sig_cfg = format!(
        r#"{{"architecture":"","config":{{}},"created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        d(payload.as_bytes())
    );
    for b in [payload.as_bytes(), sig_cfg.as_bytes()] {
        let dg = reg.push_blob(name, b).await;
        blobs.push((dg, b.to_vec()));
    }
    let sig_m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": descriptor(media::OCI_IMAGE_CONFIG, &d(sig_cfg.as_bytes()), sig_cfg.len()),
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": d(payload.as_bytes()),
            "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfake"}
        }],
    }))
    .unwrap();
    let signature_tag = format!("sha256-{}.sig", docker.hex());
    let signature = reg
        .push_manifest(name, &signature_tag, media::OCI_MANIFEST, &sig_m)
        .await;
    tags.push((signature_tag.clone(), sig_m, media::OCI_MANIFEST.to_string()));

    Fixture {
        name: name.to_owned(),
        tags,
        index,
        amd64,
        arm64,
        docker,
        signature,
        signature_tag,
        blobs,
        docker_layers: vec![d(&dock)],
    }
}

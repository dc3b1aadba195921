//! The embedded store on a full disk: a small tmpfs under the data directory, the routers in
//! process. Pushes larger than the free space answer 507 with the OCI error and leave no
//! partial file behind; a full disk under the metadata database answers 507 too; and once
//! space is freed, pushes and repository creates work again in the same process.
//!
//! Mounting needs root (or passwordless sudo); without either the test says so and skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::Router;
use berth::app::LocalApp;
use berth::domain::{media, Digest};
use common::http::{Req, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const MIB: usize = 1024 * 1024;
const TMPFS_MIB: usize = 16;
const PW: &str = "disk-full-password";
const REPOS: &str = "/pulp/api/v3/repositories/container/container/";

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
    sudo: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB owned by this user, or says why it cannot.
    fn mount(mib: usize) -> Result<Tmpfs, String> {
        let id = |flag: &str| -> Result<String, String> {
            let out = Command::new("id").arg(flag).output().map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let (uid, gid) = (id("-u")?, id("-g")?);
        let dir = tempfile::Builder::new()
            .prefix("berth-disk-full-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let sudo = uid != "0";
        let opts = format!("size={mib}m,mode=0700,uid={uid},gid={gid}");
        let mut cmd = Self::privileged(sudo, "mount");
        cmd.args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(dir.path());
        match cmd.output() {
            Ok(out) if out.status.success() => Ok(Tmpfs { dir, sudo }),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn privileged(sudo: bool, program: &str) -> Command {
        if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", program]);
            c
        } else {
            Command::new(program)
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Self::privileged(self.sudo, "umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // still busy: detach it now, the kernel frees it once the last user is gone
            let _ = Self::privileged(self.sudo, "umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

struct T {
    router: Router,
    data: PathBuf,
}

impl T {
    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Resp {
        Req::new(method, uri)
            .headers(headers)
            .body(body)
            .send(&self.router)
            .await
    }

    async fn pulp(&self, method: Method, uri: &str, body: Option<Value>) -> Resp {
        let r = Req::new(method, uri).basic("admin", PW);
        match body {
            Some(v) => r.json(&v),
            None => r,
        }
        .send(&self.router)
        .await
    }

    async fn create_repository(&self, name: &str) -> Resp {
        self.pulp(Method::POST, REPOS, Some(json!({ "name": name }))).await
    }

    /// A monolithic upload.
    async fn blob(&self, name: &str, bytes: Vec<u8>) -> Resp {
        let d = Digest::sha256_of(&bytes);
        self.send(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?digest={d}"),
            &[],
            bytes,
        )
        .await
    }

    async fn get_status(&self, loc: &str) -> Resp {
        self.send(Method::GET, loc, &[], Body::empty()).await
    }

    /// A new upload session's location.
    async fn session(&self, name: &str) -> String {
        let r = self
            .send(Method::POST, &format!("/v2/{name}/blobs/uploads/"), &[], Body::empty())
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        r.header("location").to_owned()
    }

    /// Pushes a one-layer image; returns the response to its manifest PUT.
    async fn image(&self, name: &str, tag: &str, layer: &[u8]) -> Resp {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","image":"{name}:{tag}"}}"#);
        for b in [config.as_bytes(), layer] {
            let r = self.blob(name, b.to_vec()).await;
            if r.status != StatusCode::CREATED {
                return r;
            }
        }
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": Digest::sha256_of(config.as_bytes()), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::sha256_of(layer), "size": layer.len()}],
        }))
        .unwrap();
        self.send(
            Method::PUT,
            &format!("/v2/{name}/manifests/{tag}"),
            &[("content-type", media::OCI_MANIFEST)],
            m,
        )
        .await
    }

    /// The files in a folder of the data directory.
    fn files_in(&self, folder: &str) -> Vec<String> {
        std::fs::read_dir(self.data.join(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Nothing is left of failed uploads: no staged upload, no blob write in progress.
    fn assert_no_partial_files(&self, after: &str) {
        assert_eq!(self.files_in("uploads"), Vec::<String>::new(), "uploads/ after {after}");
        assert_eq!(self.files_in("tmp"), Vec::<String>::new(), "tmp/ after {after}");
    }

    /// Every stored blob hashes to its name; returns how many there are.
    fn check_blobs(&self) -> usize {
        let mut n = 0;
        let root = self.data.join("blobs").join("sha256");
        for shard in std::fs::read_dir(root).unwrap() {
            for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                let f = f.unwrap();
                let bytes = std::fs::read(f.path()).unwrap();
                let name = f.file_name().to_string_lossy().into_owned();
                assert_eq!(hex::encode(Sha256::digest(&bytes)), name, "blob {name}");
                n += 1;
            }
        }
        n
    }
}

/// A 507 with the OCI error for a full disk.
fn assert_no_space(r: &Resp, what: &str) {
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), "application/json", "{what}");
    let e = &r.json()["errors"][0];
    assert_eq!(e["code"], "BLOB_UPLOAD_INVALID", "{what}: {}", r.text());
    assert!(
        e["message"].as_str().unwrap_or("").contains("out of storage space"),
        "{what}: {}",
        r.text()
    );
    assert!(
        e["detail"].as_str().unwrap_or("").contains("out of storage space"),
        "{what}: {}",
        r.text()
    );
}

/// Bytes that do not compress or repeat.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Fills the file system holding `path` to the last byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [MIB, 4096, 1] {
        let buf = vec![0xa5u8; chunk];
        while f.write_all(&buf).and_then(|()| f.flush()).is_ok() {}
    }
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_cleans_up_and_recovers_without_a_restart() {
    let fs = match Tmpfs::mount(TMPFS_MIB) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "SKIPPED disk_full: mounting a tmpfs needs root or passwordless sudo ({why}); \
                 run the tests as root or with sudo to cover a full disk"
            );
            return;
        }
    };
    let data = fs.path().join("data");
    let local = LocalApp::embedded(&data, Default::default()).await.unwrap();
    local.app.users.ensure_admin(Some(PW)).await.unwrap();
    let t = T {
        router: local.app.router(),
        data,
    };
    let big = TMPFS_MIB * MIB + 4 * MIB;

    // Given an image pushed while there is space
    let r = t.image("team/app", "1", &noise(64 * 1024, 1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // When a monolithic upload is larger than the disk: 507, and nothing is left of it
    let r = t.blob("team/app", noise(big, 2)).await;
    assert_no_space(&r, "monolithic POST");
    t.assert_no_partial_files("a monolithic POST");

    // ... the whole layer in the closing PUT of a session
    let layer = noise(big, 3);
    let loc = t.session("team/app").await;
    let d = Digest::sha256_of(&layer);
    let r = t.send(Method::PUT, &format!("{loc}?digest={d}"), &[], layer).await;
    assert_no_space(&r, "closing PUT");
    t.assert_no_partial_files("a closing PUT");

    // ... chunks, of which the second does not fit: the session's staged bytes go with it,
    // and the client starts again (the session is unknown from then on)
    let layer = noise(big, 4);
    let loc = t.session("team/app").await;
    let first = 4 * MIB;
    let range = format!("0-{}", first - 1);
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", &range)],
            layer[..first].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let range = format!("{first}-{}", layer.len() - 1);
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", &range)],
            layer[first..].to_vec(),
        )
        .await;
    assert_no_space(&r, "PATCH chunk");
    t.assert_no_partial_files("a PATCH chunk");
    let r = t.get_status(&loc).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
    let r = t
        .send(
            Method::PUT,
            &format!("{loc}?digest={}", Digest::sha256_of(&layer)),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    // Then the space came back at once: a push and a repository create work
    let r = t.image("team/app", "2", &noise(MIB, 5)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = t.create_repository("before-full").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // When the disk is full to the last byte, the metadata database runs out of space too:
    // repository creates answer 507 with Pulp's detail, pushes 507 with the OCI error
    fill(&fs.path().join("filler"));
    let mut refused = None;
    for i in 0..3000 {
        let r = t.create_repository(&format!("full-{i}")).await;
        if r.status != StatusCode::CREATED {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the metadata database never ran out of space");
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap_or("").to_owned();
    assert!(detail.contains("out of storage space"), "{}", r.text());
    let r = t.blob("team/other", noise(1024, 6)).await;
    assert_no_space(&r, "a push to a new name on a full disk");
    let r = t.blob("team/app", noise(1024, 7)).await;
    assert_no_space(&r, "a push on a full disk");
    t.assert_no_partial_files("pushes on a full disk");

    // Then, once space is freed, everything works again in the same process
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let r = t.create_repository("after-full").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = t.image("team/app", "3", &noise(2 * MIB, 8)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = t.image("team/other", "1", &noise(MIB, 9)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let loc = t.session("team/app").await;
    let r = t.send(Method::DELETE, &loc, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let layer = noise(3 * MIB, 10);
    let loc = t.session("team/app").await;
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "0-1048575")],
            layer[..MIB].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = t
        .send(
            Method::PUT,
            &format!("{loc}?digest={}", Digest::sha256_of(&layer)),
            &[],
            layer[MIB..].to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    for tag in ["1", "2", "3"] {
        let r = t
            .send(
                Method::GET,
                &format!("/v2/team/app/manifests/{tag}"),
                &[("accept", media::OCI_MANIFEST)],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "tag {tag}: {}", r.text());
    }
    let r = t.pulp(Method::GET, &format!("{REPOS}?name=before-full"), None).await;
    assert_eq!(r.json()["count"], 1, "{}", r.text());
    t.assert_no_partial_files("recovery");
    // configs and layers of three images, one of another, and the chunked layer
    assert!(t.check_blobs() >= 9);
    drop(local);
}

//! HTTPS for the local binary: a certificate chain and its key from two PEM files, served to
//! every connection through a resolver whose pair is swapped when the files change.
//!
//! - the chain's first certificate is the server's, the others its intermediates; the key may
//!   be PKCS#8 (`PRIVATE KEY`), RSA (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) and must be
//!   the first certificate's;
//! - the cryptography is rustls's ring provider, the one Berth's HTTP client already uses;
//! - ALPN offers `h2` and `http/1.1` (the server speaks both on one port);
//! - the files are read again every [`RELOAD_EVERY`]; a new pair is served to connections from
//!   then on, and a pair that does not load is logged and the one in use kept. A pair that does
//!   not load at start stops the start.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are read again to see whether they changed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The largest certificate or key file read (a chain is a few KiB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The ALPN protocols offered, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where the certificate chain and the key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The two files' contents, as last read.
type Contents = (Vec<u8>, Vec<u8>);

/// The TLS side of the server: what new connections are handed, and what keeps it current.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
    /// The files as the pair in use was loaded from.
    loaded: Contents,
}

impl Tls {
    /// Loads the pair; the error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = read_pair(&files)?;
        let key = parse_pair(&files, &provider, &loaded)?;
        tracing::info!(
            cert = %files.cert.display(),
            sha256 = %fingerprint(&key),
            "serving HTTPS with this certificate"
        );
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            files,
            provider,
            resolver,
            config: Arc::new(config),
            loaded,
        })
    }

    /// What performs the handshakes; it serves whichever pair is current at each.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// Reads the files every [`RELOAD_EVERY`] and swaps in a changed pair that loads, for as
    /// long as the process runs.
    pub fn keep_current(&self) {
        let mut reloader = Reloader {
            files: self.files.clone(),
            provider: self.provider.clone(),
            resolver: self.resolver.clone(),
            seen: self.loaded.clone(),
            complaint: None,
        };
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + RELOAD_EVERY;
            let mut every = tokio::time::interval_at(start, RELOAD_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let files = reloader.files.clone();
                match tokio::task::spawn_blocking(move || read_pair(&files)).await {
                    Ok(read) => reloader.look(read),
                    Err(e) => tracing::warn!(error = %e, "reading the TLS files failed"),
                }
            }
        });
    }
}

/// Hands every handshake the pair in use.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.0.read() {
            Ok(k) => Some(k.clone()),
            Err(poisoned) => Some(poisoned.into_inner().clone()),
        }
    }
}

/// Swaps in the files' pair when their contents change and it loads.
struct Reloader {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    /// The contents last looked at (loaded or not).
    seen: Contents,
    /// The last problem logged, so that one is logged once.
    complaint: Option<String>,
}

impl Reloader {
    fn look(&mut self, read: Result<Contents, String>) {
        let contents = match read {
            Ok(c) => c,
            Err(e) => return self.complain(e),
        };
        if contents == self.seen {
            return;
        }
        match parse_pair(&self.files, &self.provider, &contents) {
            Ok(key) => {
                tracing::info!(
                    cert = %self.files.cert.display(),
                    sha256 = %fingerprint(&key),
                    "the TLS certificate changed: new connections get the new one"
                );
                let key = Arc::new(key);
                match self.resolver.0.write() {
                    Ok(mut k) => *k = key,
                    Err(poisoned) => *poisoned.into_inner() = key,
                }
                self.complaint = None;
            }
            Err(e) => self.complain(e),
        }
        self.seen = contents;
    }

    fn complain(&mut self, problem: String) {
        if self.complaint.as_ref() != Some(&problem) {
            tracing::warn!(error = %problem, "the TLS files changed but do not load: keeping the certificate in use");
            self.complaint = Some(problem);
        }
    }
}

/// Reads both files (each at most [`MAX_FILE_BYTES`]).
fn read_pair(files: &TlsFiles) -> Result<Contents, String> {
    Ok((read_file(&files.cert)?, read_file(&files.key)?))
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{}: larger than {MAX_FILE_BYTES} bytes", path.display()));
    }
    Ok(bytes)
}

/// The certificate chain and the key from the files' contents, checked to belong together.
fn parse_pair(files: &TlsFiles, provider: &CryptoProvider, (cert, key): &Contents) -> Result<CertifiedKey, String> {
    let cert_file = files.cert.display();
    let key_file = files.key.display();
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_file}: {}", pem_problem(e)))?;
    if chain.is_empty() {
        return Err(format!(
            "{cert_file}: no certificate in it (a PEM `BEGIN CERTIFICATE` block)"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{key_file}: no private key in it (a PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or \
             `BEGIN EC PRIVATE KEY` block; an encrypted key must be decrypted first)"
        ),
        e => format!("{key_file}: {}", pem_problem(e)),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            format!("{key_file} is not the key of the first certificate in {cert_file}")
        }
        rustls::Error::General(e) => format!("{key_file}: not a usable private key ({e})"),
        e => format!("{cert_file}, {key_file}: {e}"),
    })
}

fn pem_problem(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            let kind = String::from_utf8_lossy(&end_marker);
            format!("not valid PEM: a `BEGIN {kind}` block has no `END {kind}` line")
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("not valid PEM: {}", String::from_utf8_lossy(&line))
        }
        e => format!("not valid PEM: {e}"),
    }
}

/// The SHA-256 of the served certificate, as hex (what `openssl x509 -fingerprint -sha256`
/// shows, without the colons).
fn fingerprint(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .map(|c| hex::encode(ring::digest::digest(&ring::digest::SHA256, c)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn a_bad_pair_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let (cert, key) = pair(&["localhost"]);
        let (_, other_key) = pair(&["localhost"]);
        let cases: [(&str, &str, &str); 5] = [
            ("", &key, "no certificate"),
            (&key, &key, "no certificate"),
            (&cert, &cert, "no private key"),
            (&cert, &other_key, "is not the key of the first certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n",
                &key,
                "has no `END CERTIFICATE` line",
            ),
        ];
        for (c, k, want) in cases {
            std::fs::write(&f.cert, c).unwrap();
            std::fs::write(&f.key, k).unwrap();
            let err = Tls::load(f.clone()).err().unwrap();
            assert!(err.contains(want), "{err}");
        }
        std::fs::remove_file(&f.key).unwrap();
        let err = Tls::load(f.clone()).err().unwrap();
        assert!(err.starts_with("cannot read ") && err.contains("key.pem"), "{err}");
        std::fs::write(&f.cert, &cert).unwrap();
        std::fs::write(&f.key, &key).unwrap();
        assert!(Tls::load(f).is_ok());
    }

    #[test]
    fn a_changed_pair_is_swapped_in_and_a_bad_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let (cert, key) = pair(&["localhost"]);
        std::fs::write(&f.cert, &cert).unwrap();
        std::fs::write(&f.key, &key).unwrap();
        let tls = Tls::load(f.clone()).unwrap();
        let mut r = Reloader {
            files: f.clone(),
            provider: tls.provider.clone(),
            resolver: tls.resolver.clone(),
            seen: tls.loaded.clone(),
            complaint: None,
        };
        let served = || fingerprint(&tls.resolver.0.read().unwrap());
        let first = served();
        // a new certificate without its key: kept, and said once
        let (cert2, key2) = pair(&["localhost"]);
        std::fs::write(&f.cert, &cert2).unwrap();
        r.look(read_pair(&f));
        assert_eq!(served(), first);
        assert!(r.complaint.as_deref().unwrap_or("").contains("is not the key"));
        // then its key: swapped in
        std::fs::write(&f.key, &key2).unwrap();
        r.look(read_pair(&f));
        assert_ne!(served(), first);
        assert!(r.complaint.is_none());
        // files gone: kept
        let second = served();
        std::fs::remove_file(&f.cert).unwrap();
        r.look(read_pair(&f));
        assert_eq!(served(), second);
        assert!(r.complaint.as_deref().unwrap_or("").starts_with("cannot read"));
    }
}

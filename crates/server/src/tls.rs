//! TLS for the listener: a certificate and key from PEM files, reloaded without a restart
//! when the files change (polled) or on SIGHUP, as cert-manager and similar tools rotate
//! them. A reload swaps the certificate for new handshakes only: connections already
//! established keep theirs, so in-flight pulls finish. A bad pair (unreadable, mismatched)
//! is logged and the old certificate stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are checked for a change.
const POLL: Duration = Duration::from_secs(2);

/// The current certificate, swapped in place on reload.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times and sizes the current certificate was read at.
    seen: RwLock<Option<(FileStamp, FileStamp)>>,
}

type FileStamp = (SystemTime, u64);

fn stamp(p: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("certificate {}: no certificate in the file", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key {}: {e}", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, private, &provider).map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
}

impl Certificates {
    /// Reads the pair; the error names the file and what is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, String> {
        let seen = stamp(cert).zip(stamp(key));
        let ck = load(cert, key)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
            seen: RwLock::new(seen),
        }))
    }

    /// Reads the files again; keeps the old certificate when they do not make a valid pair
    /// (e.g. caught between writing the certificate and the key).
    pub fn reload(&self) -> bool {
        let seen = stamp(&self.cert).zip(stamp(&self.key));
        match load(&self.cert, &self.key) {
            Ok(ck) => {
                if let Ok(mut c) = self.current.write() {
                    *c = Arc::new(ck);
                }
                if let Ok(mut s) = self.seen.write() {
                    *s = seen;
                }
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use");
                false
            }
        }
    }

    /// Polls the files and reloads when either changed. Runs until the process ends.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            let now = stamp(&self.cert).zip(stamp(&self.key));
            let changed = self.seen.read().map(|s| now.is_some() && *s != now).unwrap_or(false);
            if changed {
                self.reload();
                // A failed reload is retried only when the files change again.
                if let Ok(mut s) = self.seen.write() {
                    *s = now;
                }
            }
        }
    }

    /// The server configuration: HTTP/2 and HTTP/1.1 by ALPN, this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

//! The S3-compatible backend (AWS S3, Ceph RGW, MinIO, SeaweedFS, Garage...). Several
//! stateless replicas may share one bucket, so the store built here is not exclusive: tags and
//! links are cached only within bounds (`generation.rs`), and nothing relies on conditional
//! writes (some servers ignore them or do not apply them atomically).
//!
//! When the object store is down or hung, operations fail within seconds, which the server
//! answers with 503 (see `health.rs`), and succeed again as soon as it is back: no restart.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::FutureExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RetryConfig,
};
use oci::Digest;

use crate::backend::Backend;
use crate::health::{Health, Probe, Timings};
use crate::{keys, Result, Store, StoreError};

/// Where and how to reach the bucket.
#[derive(Clone)]
pub struct S3Config {
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:8333`
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Key prefix inside the bucket, so several registries can share one.
    pub prefix: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Presigns download URLs, for redirects straight to the bucket.
pub(crate) struct Presigner {
    /// `None` without access keys: there is nothing to sign with (object_store would go and
    /// ask the cloud's instance metadata service for credentials, on every blob GET).
    signer: Option<AmazonS3>,
    prefix: Option<String>,
}

impl Backend {
    /// The backend for an S3 bucket. Plain HTTP is allowed only for loopback endpoints.
    pub(crate) fn s3(cfg: &S3Config) -> Result<Self> {
        let url = url::Url::parse(&cfg.endpoint).map_err(|e| config_error(format!("endpoint {:?}: {e}", cfg.endpoint)))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() == "http" && !loopback {
            return Err(config_error(format!("endpoint {} uses plain HTTP; only loopback endpoints may (use https)", cfg.endpoint)));
        }
        let allow_http = url.scheme() == "http";
        let build = |options: ClientOptions, retry: RetryConfig| {
            let mut builder = AmazonS3Builder::new()
                .with_endpoint(&cfg.endpoint)
                .with_bucket_name(&cfg.bucket)
                .with_region(&cfg.region)
                .with_virtual_hosted_style_request(false)
                .with_client_options(options)
                .with_retry(retry);
            if let (Some(k), Some(s)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                builder = builder.with_access_key_id(k).with_secret_access_key(s);
            } else {
                builder = builder.with_skip_signature(true);
            }
            builder.build()
        };
        let s3 = build(client_options(allow_http, CONNECT_TIMEOUT, READ_TIMEOUT), retry_config(3))?;
        let probe_timeout = Timings::default().probe_timeout;
        let probe = build(client_options(allow_http, probe_timeout, probe_timeout), retry_config(0))?;
        let prefix = cfg.prefix.as_deref().map(|p| p.trim_matches('/').to_string()).filter(|p| !p.is_empty());
        let prefixed = |s3: &AmazonS3| -> Arc<dyn ObjectStore> {
            match &prefix {
                Some(p) => Arc::new(PrefixStore::new(s3.clone(), p.as_str())),
                None => Arc::new(s3.clone()),
            }
        };
        let describe = format!(
            "s3 {}/{}{}",
            cfg.endpoint.trim_end_matches('/'),
            cfg.bucket,
            prefix.as_deref().map(|p| format!("/{p}")).unwrap_or_default()
        );
        let probe_store = prefixed(&probe);
        let probe: Probe = Arc::new(move || {
            let store = probe_store.clone();
            async move {
                match store.head(&keys::ping()).await {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
            .boxed()
        });
        let health = Health::new(describe.clone(), probe, Timings::default());
        let os: Arc<dyn ObjectStore> = Arc::new(Guarded { inner: prefixed(&s3), health });
        let signer = (cfg.access_key_id.is_some() && cfg.secret_access_key.is_some()).then_some(s3);
        Ok(Backend::bucket(os, describe, Presigner { signer, prefix }))
    }
}

impl Presigner {
    /// A presigned GET of `key`, valid for `ttl`; `None` without access keys.
    pub(crate) async fn url(&self, key: &Path, ttl: Duration) -> Result<Option<url::Url>> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let full = match &self.prefix {
            Some(p) => Path::from(format!("{p}/{key}")),
            None => key.clone(),
        };
        Ok(Some(signer.signed_url(http::Method::GET, &full, ttl).await?))
    }
}

impl Store {
    /// A presigned URL for downloading a blob straight from the object store, valid for
    /// `ttl`; `None` on backends that cannot presign (the filesystem, S3 without access keys),
    /// which then serve the bytes themselves.
    pub async fn presigned_blob_url(&self, d: &Digest, ttl: Duration) -> Result<Option<url::Url>> {
        self.inner.backend.presign(&keys::blob(d), ttl).await
    }
}

fn config_error(reason: String) -> StoreError {
    StoreError::Config(reason)
}

/// Ceilings for one request to the store. They are generous, since some operations are slow
/// on a healthy store (the first write to a fresh SeaweedFS bucket takes 5 s while it grows
/// volumes; an 8 MiB part must be sent before its answer comes; a server-side copy of a
/// multi-GiB blob) and failing them would be wrong. Failing fast when the store is down is
/// [`Health`]'s job, not theirs. The read timeout is the time from sending a request to its
/// response headers, and then each wait for the next body bytes, so it never cuts a long
/// download that keeps moving; a whole-request timeout would.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

fn client_options(allow_http: bool, connect: Duration, read: Duration) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(connect)
        .with_read_timeout(read)
        // No whole-request timeout: blob bodies of several GiB stream for a long time.
        .with_timeout_disabled()
        .with_pool_idle_timeout(Duration::from_secs(30))
}

/// A few quick retries of what failed quickly (a refused connection, a 503 SlowDown), rather
/// than object_store's default of minutes of retrying: a client that gets a 503 retries.
fn retry_config(max_retries: usize) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(500), base: 2.0 },
        max_retries,
        retry_timeout: Duration::from_secs(3),
    }
}

/// The bucket's store with every operation guarded by [`Health`], multipart parts included.
/// Response bodies are not (a timer per chunk would cost on the hot path): a download that
/// stalls midway is cut by the read timeout.
#[derive(Debug)]
struct Guarded {
    inner: Arc<dyn ObjectStore>,
    health: Arc<Health>,
}

impl std::fmt::Display for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Guarded {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.health.guard(self.inner.put_opts(location, payload, opts)).await?
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.health.guard(self.inner.put_multipart_opts(location, opts)).await??;
        Ok(Box::new(GuardedUpload { inner: Some(inner), health: self.health.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.health.guard(self.inner.get_opts(location, options)).await?
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.health.guard(self.inner.get_ranges(location, ranges)).await?
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.health.guard_stream(self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.health.guard_stream(self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.health.guard_stream(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.health.guard(self.inner.list_with_delimiter(prefix)).await?
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.health.guard(self.inner.copy_opts(from, to, options)).await?
    }
}

/// A multipart upload whose parts, completion and abort are guarded like operations: a
/// hung store fails an upload in progress as fast as a new request. An abort that fails (the
/// store is down: exactly when writes get aborted) is retried in the background once the store
/// answers again, so an outage leaves no incomplete multipart upload behind.
#[derive(Debug)]
struct GuardedUpload {
    /// `None` once handed to a background abort.
    inner: Option<Box<dyn MultipartUpload>>,
    health: Arc<Health>,
}

/// Background retries of a failed abort, the n-th after 2^n s (about 17 min in all).
const ABORT_RETRIES: u32 = 10;

impl GuardedUpload {
    fn aborted() -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: "the multipart upload was aborted".into() }
    }

    fn abort_later(&mut self, first_error: &object_store::Error) {
        let Some(mut upload) = self.inner.take() else { return };
        let health = self.health.clone();
        tracing::warn!(error = %first_error, "aborting a multipart upload failed; retrying in the background");
        tokio::spawn(async move {
            for n in 0..ABORT_RETRIES {
                // A store marked down is checked every 0.5 s: wait for it to answer first.
                let mut down = health.subscribe();
                let _ = tokio::time::timeout(Duration::from_secs(600), down.wait_for(Option::is_none)).await;
                tokio::time::sleep(Duration::from_secs(1 << n)).await;
                match health.guard(upload.abort()).await {
                    Ok(Ok(())) => {
                        tracing::info!("aborted a multipart upload left by an outage");
                        return;
                    }
                    Ok(Err(e)) | Err(e) => tracing::debug!(error = %e, "aborting a multipart upload failed again"),
                }
            }
            tracing::error!("gave up aborting a multipart upload: a lifecycle rule on the bucket has to remove it");
        });
    }
}

#[async_trait::async_trait]
impl MultipartUpload for GuardedUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let Some(upload) = self.inner.as_mut() else { return Box::pin(async { Err(Self::aborted()) }) };
        let part = upload.put_part(data);
        let health = self.health.clone();
        Box::pin(async move { health.guard(part).await? })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let Some(upload) = self.inner.as_mut() else { return Err(Self::aborted()) };
        self.health.guard(upload.complete()).await?
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let Some(upload) = self.inner.as_mut() else { return Ok(()) };
        let result = self.health.guard(upload.abort()).await.and_then(|r| r);
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.abort_later(&e);
                Err(e)
            }
        }
    }
}

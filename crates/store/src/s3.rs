//! The S3-compatible backend (AWS S3, Ceph RGW, MinIO, SeaweedFS, Garage...). Several
//! stateless replicas may share one bucket, so the store built here is not exclusive: tags and
//! links are never cached, and nothing relies on conditional writes (some servers ignore them
//! or do not apply them atomically).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RetryConfig,
};
use oci::Digest;

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

/// What the S3 backend keeps besides the `ObjectStore`: the signer for presigned redirects.
pub(crate) struct S3Extra {
    signer: AmazonS3,
    prefix: Option<String>,
}

impl Store {
    /// A store in an S3 bucket. Plain HTTP is allowed only for loopback endpoints.
    pub fn s3(cfg: &S3Config) -> Result<Self> {
        // reqwest is built without a default TLS provider; ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = url::Url::parse(&cfg.endpoint).map_err(|e| config_error(format!("endpoint {:?}: {e}", cfg.endpoint)))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() == "http" && !loopback {
            return Err(config_error(format!(
                "endpoint {} uses plain HTTP; only loopback endpoints may (use https)",
                cfg.endpoint
            )));
        }
        let build = |class: &Class| {
            let mut builder = AmazonS3Builder::new()
                .with_endpoint(&cfg.endpoint)
                .with_bucket_name(&cfg.bucket)
                .with_region(&cfg.region)
                .with_virtual_hosted_style_request(false)
                .with_client_options(class.options(url.scheme() == "http"))
                .with_retry(class.retry());
            if let (Some(k), Some(s)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                builder = builder.with_access_key_id(k).with_secret_access_key(s);
            } else {
                builder = builder.with_skip_signature(true);
            }
            builder.build()
        };
        let control = build(&CONTROL)?;
        let bulk = build(&BULK)?;
        let prefix = cfg.prefix.as_deref().map(|p| p.trim_matches('/').to_string()).filter(|p| !p.is_empty());
        let prefixed = |s3: &AmazonS3| -> Arc<dyn ObjectStore> {
            match &prefix {
                Some(p) => Arc::new(PrefixStore::new(s3.clone(), p.as_str())),
                None => Arc::new(s3.clone()),
            }
        };
        let os: Arc<dyn ObjectStore> = Arc::new(Routed { control: prefixed(&control), bulk: prefixed(&bulk) });
        let describe = format!("s3 {}/{}{}", cfg.endpoint.trim_end_matches('/'), cfg.bucket, prefix.as_deref().map(|p| format!("/{p}")).unwrap_or_default());
        let mut store = Store::from_parts(os, describe, false);
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.s3 = Some(S3Extra { signer: control, prefix });
        }
        Ok(store)
    }

    /// A presigned URL for downloading a blob straight from the object store, valid for
    /// `ttl`; `None` on backends that cannot presign.
    pub async fn presigned_blob_url(&self, d: &Digest, ttl: Duration) -> Result<Option<url::Url>> {
        let Some(extra) = &self.inner.s3 else { return Ok(None) };
        let key = keys::blob(d);
        let full = match &extra.prefix {
            Some(p) => object_store::path::Path::from(format!("{p}/{key}")),
            None => key,
        };
        Ok(Some(extra.signer.signed_url(http::Method::GET, &full, ttl).await?))
    }
}

fn config_error(reason: String) -> StoreError {
    StoreError::Config(reason)
}

/// How long requests of one class may take, and how they are retried.
///
/// The store must fail fast when the object store is down or hung (a client gets 503 within
/// a few seconds and may retry elsewhere), yet a multi-GiB blob must be able to stream for as
/// long as it takes. reqwest's read timeout covers the time from sending a request until its
/// response headers (upload included) and then each wait for the next body bytes; a
/// whole-request timeout would cut long downloads. So there are two HTTP clients:
/// [`CONTROL`] for the many small requests every API call starts with (HEAD, small GET/PUT,
/// LIST, DELETE), with short timeouts, and [`BULK`] for blob bytes (part uploads, blob
/// downloads, server-side copies), whose requests may legitimately take longer before the
/// first response byte. A hung store thus fails every request within about
/// `read_timeout + retry_timeout` of the control class (about 4 s): each API call makes a
/// control request before it touches blob bytes.
struct Class {
    connect_timeout: Duration,
    read_timeout: Duration,
    max_retries: usize,
    /// No retry starts after this long since the first attempt.
    retry_timeout: Duration,
}

/// Small requests: an answer normally comes within milliseconds.
const CONTROL: Class = Class {
    connect_timeout: Duration::from_secs(2),
    read_timeout: Duration::from_secs(2),
    max_retries: 3,
    retry_timeout: Duration::from_secs(3),
};

/// Blob bytes: an 8 MiB part must be sent and acknowledged, or a server-side copy of up to
/// 5 GiB done, before the response headers arrive.
const BULK: Class = Class {
    connect_timeout: Duration::from_secs(2),
    read_timeout: Duration::from_secs(60),
    max_retries: 3,
    retry_timeout: Duration::from_secs(10),
};

impl Class {
    fn options(&self, allow_http: bool) -> ClientOptions {
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(self.connect_timeout)
            .with_read_timeout(self.read_timeout)
            // No whole-request timeout: blob bodies of several GiB stream for a long time.
            .with_timeout_disabled()
            .with_pool_idle_timeout(Duration::from_secs(30))
    }

    /// A few quick retries rather than object_store's default of minutes of retrying.
    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig { init_backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(500), base: 2.0 },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

/// Payloads above this size go through the bulk client even under a control key.
const SMALL_PUT: usize = 1 << 20;

/// Keys whose objects may be large: blob bytes and upload chunks (`uploads/<id>/part-<n>`).
fn is_bulk(location: &Path) -> bool {
    let key = location.as_ref();
    key.starts_with("blobs/") || (key.starts_with("uploads/") && !key.ends_with("/state.json"))
}

/// One bucket through two HTTP clients (see [`Class`]): each operation goes to the client
/// whose timeouts fit it. Both see the same keys, so this is one store to its callers.
#[derive(Debug)]
struct Routed {
    control: Arc<dyn ObjectStore>,
    bulk: Arc<dyn ObjectStore>,
}

impl std::fmt::Display for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.control)
    }
}

impl Routed {
    fn for_get(&self, location: &Path, head: bool) -> &dyn ObjectStore {
        if !head && is_bulk(location) {
            self.bulk.as_ref()
        } else {
            self.control.as_ref()
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for Routed {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        let store = if is_bulk(location) || payload.content_length() > SMALL_PUT { &self.bulk } else { &self.control };
        store.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.bulk.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.for_get(location, options.head).get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.for_get(location, false).get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.control.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.control.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.control.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.control.list_with_delimiter(prefix).await
    }

    /// A server-side copy reads and writes the whole object: bulk. (A rename is this copy
    /// and a delete, through the trait's default.)
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.bulk.copy_opts(from, to, options).await
    }
}

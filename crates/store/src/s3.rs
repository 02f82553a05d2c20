//! The S3-compatible backend (AWS S3, Ceph RGW, MinIO, SeaweedFS, Garage...). Several
//! stateless replicas may share one bucket, so the store built here is not exclusive: tags and
//! links are never cached, and nothing relies on conditional writes (some servers ignore them
//! or do not apply them atomically).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
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
        // Fail fast when the store is down: a few quick retries, then 503 to the client,
        // rather than object_store's default of minutes of retrying.
        let retry = RetryConfig {
            backoff: BackoffConfig { init_backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(500), base: 2.0 },
            max_retries: 3,
            retry_timeout: Duration::from_secs(5),
        };
        // No whole-request timeout: blob bodies of several GiB stream for a long time.
        let options = ClientOptions::new()
            .with_allow_http(url.scheme() == "http")
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout_disabled()
            .with_pool_idle_timeout(Duration::from_secs(30));
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
        let s3 = builder.build()?;
        let prefix = cfg.prefix.as_deref().map(|p| p.trim_matches('/').to_string()).filter(|p| !p.is_empty());
        let os: Arc<dyn ObjectStore> = match &prefix {
            Some(p) => Arc::new(PrefixStore::new(s3.clone(), p.as_str())),
            None => Arc::new(s3.clone()),
        };
        let describe = format!("s3 {}/{}{}", cfg.endpoint.trim_end_matches('/'), cfg.bucket, prefix.as_deref().map(|p| format!("/{p}")).unwrap_or_default());
        let mut store = Store::from_parts(os, describe, false);
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.s3 = Some(S3Extra { signer: s3, prefix });
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

//! Configuration: command-line flags, `WHARFAGE_*` environment variables and an optional TOML
//! file, in that order of precedence, over defaults that run on one machine with no file.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::CliError;

mod access;
mod mirror;
mod values;

pub(crate) use access::{AccessConfig, ListenAddr};
pub(crate) use values::{at_least_one, parse_duration, parse_size, positive};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Which storage backend holds the registry's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageKind {
    /// A local directory (`--root`); one process owns it.
    Fs,
    /// An S3-compatible bucket; any number of replicas may share it.
    S3,
}

/// What a pushed manifest must reference that the repository already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Completeness {
    /// Every blob and child manifest named must be in the repository.
    Complete,
    /// Indexes may name absent children (sparse indexes); image manifests must be complete.
    Indexes,
    /// Image manifests may name absent blobs too (a later push of them completes the image).
    Any,
}

impl From<Completeness> for server::ManifestCompleteness {
    fn from(c: Completeness) -> Self {
        match c {
            Completeness::Complete => server::ManifestCompleteness::Complete,
            Completeness::Indexes => server::ManifestCompleteness::Indexes,
            Completeness::Any => server::ManifestCompleteness::Any,
        }
    }
}

/// Combines a setting given by flag or environment with the config file's.
trait Merge {
    fn merge(self, file: Self) -> Self;
}

impl<T> Merge for Option<T> {
    /// The flag or environment wins over the file.
    fn merge(self, file: Self) -> Self {
        self.or(file)
    }
}

impl<T> Merge for Vec<T> {
    /// Lists add up: the flags' entries, then the file's.
    fn merge(mut self, file: Self) -> Self {
        self.extend(file);
        self
    }
}

/// The sections of `serve --help`, one per concern, in the order they are shown.
mod heading {
    pub(super) const LISTEN: &str = "Listen and logs";
    pub(super) const STORAGE: &str = "Storage";
    pub(super) const S3: &str = "S3 storage (--storage s3)";
    pub(super) const ACCESS: &str = "Access control";
    pub(super) const TLS: &str = "TLS";
    pub(super) const LIMITS: &str = "Limits";
    pub(super) const GC: &str = "Garbage collection";
    pub(super) const STAGING: &str = "Staging from upstream registries";
    pub(super) const MIRROR: &str = "Mirror";
}

/// Declares every setting once: the field's `arg` attribute makes it a flag and a
/// `WHARFAGE_*` variable (clap), its name is its TOML key (serde, unknown keys refused),
/// its doc comment is its help and its `help_heading` its section of `serve --help`.
/// Storage settings are also all that `fsck` takes.
macro_rules! settings {
    (
        storage { $( $(#[$smeta:meta])* $sfield:ident : $sty:ty, )* }
        serve { $( $(#[$vmeta:meta])* $vfield:ident : $vty:ty, )* }
    ) => {
        /// Where the data is: the flags `fsck` takes (its config file may hold any key).
        #[derive(Debug, Default, Args, Deserialize)]
        pub(crate) struct StorageArgs {
            $( $(#[$smeta])* $sfield: $sty, )*
        }

        /// `wharfage serve` flags. Every flag can also come from the environment or the config file.
        #[derive(Debug, Default, Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct ServeArgs {
            $( $(#[$smeta])* $sfield: $sty, )*
            $( $(#[$vmeta])* $vfield: $vty, )*
        }

        impl From<StorageArgs> for ServeArgs {
            fn from(s: StorageArgs) -> Self {
                ServeArgs { $( $sfield: s.$sfield, )* ..Default::default() }
            }
        }

        impl ServeArgs {
            /// These settings (flags and environment) over the config file's.
            fn over(self, file: ServeArgs) -> ServeArgs {
                ServeArgs {
                    $( $sfield: Merge::merge(self.$sfield, file.$sfield), )*
                    $( $vfield: Merge::merge(self.$vfield, file.$vfield), )*
                }
            }
        }
    };
}

settings! {
    storage {
    /// TOML configuration file; its keys are the long flag names with `_` for `-`
    #[arg(long, env = "WHARFAGE_CONFIG", help_heading = heading::LISTEN)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Storage root directory for the filesystem backend [default: ./wharfage-data]
    #[arg(long, env = "WHARFAGE_ROOT", help_heading = heading::STORAGE)]
    root: Option<PathBuf>,
    /// Storage backend [default: fs]
    #[arg(long, env = "WHARFAGE_STORAGE", value_enum, help_heading = heading::STORAGE)]
    storage: Option<StorageKind>,
    /// S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com (plain http only on loopback)
    #[arg(long, env = "WHARFAGE_S3_ENDPOINT", help_heading = heading::S3)]
    s3_endpoint: Option<String>,
    /// S3 bucket (must exist)
    #[arg(long, env = "WHARFAGE_S3_BUCKET", help_heading = heading::S3)]
    s3_bucket: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long, env = "WHARFAGE_S3_REGION", help_heading = heading::S3)]
    s3_region: Option<String>,
    /// Key prefix inside the bucket
    #[arg(long, env = "WHARFAGE_S3_PREFIX", help_heading = heading::S3)]
    s3_prefix: Option<String>,
    /// An upload session idle this long expires: refused, then removed by garbage collection
    /// [default: 24h]
    #[arg(long, env = "WHARFAGE_UPLOAD_EXPIRY", help_heading = heading::LIMITS)]
    upload_expiry: Option<String>,
    /// Answer blob GETs with a redirect to a presigned object-store URL
    #[arg(long, env = "WHARFAGE_S3_REDIRECT", num_args = 0..=1, default_missing_value = "true", help_heading = heading::S3)]
    s3_redirect: Option<bool>,
    /// Local directory caching blobs read from S3, so repeated pulls skip the object store
    /// (S3 storage only) [default: off]
    #[arg(long, env = "WHARFAGE_BLOB_CACHE_DIR", help_heading = heading::S3)]
    blob_cache_dir: Option<PathBuf>,
    /// Most disk space the blob cache uses, e.g. 20GiB; least recently used blobs go first
    /// [default: 10GiB]
    #[arg(long, env = "WHARFAGE_BLOB_CACHE_SIZE", help_heading = heading::S3)]
    blob_cache_size: Option<String>,
    /// S3 access key (TOML only; else AWS_ACCESS_KEY_ID)
    #[arg(skip)]
    s3_access_key_id: Option<String>,
    /// S3 secret key (TOML only; else AWS_SECRET_ACCESS_KEY)
    #[arg(skip)]
    s3_secret_access_key: Option<String>,
    }
    serve {
    /// S3 storage: how long a replica answers pulls with a tag it read before asking the
    /// store again (one conditional request), e.g. 1s, 500ms; 0 reads tags and links on every
    /// request. Deletes reach every replica within this or 1s, whichever is shorter
    /// [default: 1s]
    #[arg(long, env = "WHARFAGE_TAG_CACHE_TTL")]
    tag_cache_ttl: Option<String>,
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "WHARFAGE_LISTEN", help_heading = heading::LISTEN)]
    listen: Option<String>,
    /// Log format [default: text]
    #[arg(long, env = "WHARFAGE_LOG_FORMAT", value_enum, help_heading = heading::LISTEN)]
    log_format: Option<LogFormat>,
    /// Log filter in tracing's syntax, e.g. `info` or `wharfage=debug` [default: info]
    #[arg(long, env = "WHARFAGE_LOG", help_heading = heading::LISTEN)]
    log: Option<String>,
    /// Upstream registry (host:port) to reach over plain HTTP when staging; repeatable
    #[arg(long = "insecure-registry", env = "WHARFAGE_INSECURE_REGISTRIES", value_delimiter = ',', help_heading = heading::STAGING)]
    #[serde(default)]
    insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM bundle) trusted for upstream registries, besides the system roots
    #[arg(long, env = "WHARFAGE_UPSTREAM_CA", help_heading = heading::STAGING)]
    upstream_ca: Option<PathBuf>,
    /// A staging fails (504) when an upstream registry sends no byte for this long, on each of
    /// its retries, e.g. 30s, 2m [default: 60s]
    #[arg(long, env = "WHARFAGE_UPSTREAM_TIMEOUT", help_heading = heading::STAGING)]
    upstream_timeout: Option<String>,
    /// Blobs of at least twice this size are staged as concurrent `Range` requests of this
    /// size, e.g. 8MiB; 0 fetches every blob on one connection. At most 64MiB (a staging
    /// buffers at most 64 MiB of ranges) [default: 8MiB]
    #[arg(long, env = "WHARFAGE_UPSTREAM_RANGE_SIZE", help_heading = heading::STAGING)]
    upstream_range_size: Option<String>,
    /// Ranges of one blob in flight at once when staging [default: 8]
    #[arg(long, env = "WHARFAGE_UPSTREAM_RANGE_PARALLEL", help_heading = heading::STAGING)]
    upstream_range_parallel: Option<usize>,
    /// Parallel blob downloads per staging [default: 4]
    #[arg(long, env = "WHARFAGE_STAGE_CONCURRENCY", help_heading = heading::STAGING)]
    stage_concurrency: Option<usize>,
    /// Objects younger than this are never garbage-collected, e.g. 1h, 30m, 0s [default: 1h]
    #[arg(long, env = "WHARFAGE_GC_GRACE", help_heading = heading::GC)]
    gc_grace: Option<String>,
    /// Run garbage collection periodically at this interval, e.g. 6h [default: off]
    #[arg(long, env = "WHARFAGE_GC_INTERVAL", help_heading = heading::GC)]
    gc_interval: Option<String>,
    /// What a pushed manifest may name that the repository lacks: `complete` refuses any
    /// absent blob or child manifest, `indexes` accepts sparse indexes (one-platform stagings
    /// pin them), `any` also accepts image manifests whose blobs are pushed later
    /// [default: indexes]
    #[arg(long, env = "WHARFAGE_MANIFEST_COMPLETENESS", value_enum, help_heading = heading::STORAGE)]
    manifest_completeness: Option<Completeness>,
    /// The same as `--manifest-completeness complete` (kept for older configurations); an
    /// error together with a different `--manifest-completeness`
    #[arg(long, env = "WHARFAGE_REQUIRE_COMPLETE_INDEXES", num_args = 0..=1, default_missing_value = "true", help_heading = heading::STORAGE)]
    require_complete_indexes: Option<bool>,
    /// Previous stagings kept per live app, besides the current one [default: 2]
    #[arg(long, env = "WHARFAGE_RETAIN", help_heading = heading::GC)]
    retain: Option<usize>,
    /// Longest time a push or staging takes from protecting a digest to committing the
    /// manifest that uses it; garbage collection honours protections this recent [default: 60s]
    #[arg(long, env = "WHARFAGE_GC_PROTECT_WINDOW", help_heading = heading::GC)]
    gc_protect_window: Option<String>,
    /// Most open upload sessions this server keeps [default: 10000]
    #[arg(long, env = "WHARFAGE_MAX_UPLOADS", help_heading = heading::LIMITS)]
    max_uploads: Option<usize>,
    /// Most open upload sessions in one repository [default: 1000]
    #[arg(long, env = "WHARFAGE_MAX_UPLOADS_PER_REPOSITORY", help_heading = heading::LIMITS)]
    max_uploads_per_repository: Option<usize>,
    /// Most client connections served at once; more wait in the listen queue [default: 4096]
    #[arg(long, env = "WHARFAGE_MAX_CONNECTIONS", help_heading = heading::LIMITS)]
    max_connections: Option<usize>,
    /// Length of the listen queue of connections not yet accepted [default: 4096]
    #[arg(long, env = "WHARFAGE_LISTEN_BACKLOG", help_heading = heading::LIMITS)]
    listen_backlog: Option<u32>,
    /// A client must send a request's headers within this time, and a keep-alive connection
    /// idle this long is closed [default: 30s]
    #[arg(long, env = "WHARFAGE_HEADER_TIMEOUT", help_heading = heading::LIMITS)]
    header_timeout: Option<String>,
    /// A request body that sends no byte for this long fails [default: 60s]
    #[arg(long, env = "WHARFAGE_BODY_TIMEOUT", help_heading = heading::LIMITS)]
    body_timeout: Option<String>,
    /// Upstream hosts stagings may reach (patterns such as `*.example.com`, `registry:5000`);
    /// repeatable. When set, every other host is refused [default: any public host]
    #[arg(long = "upstream-allow", env = "WHARFAGE_UPSTREAM_ALLOW", value_delimiter = ',', help_heading = heading::STAGING)]
    #[serde(default)]
    upstream_allow: Vec<String>,
    /// Upstream hosts stagings may not reach (same patterns); repeatable. Link-local and
    /// cloud metadata addresses are refused unless an allow pattern names them
    #[arg(long = "upstream-deny", env = "WHARFAGE_UPSTREAM_DENY", value_delimiter = ',', help_heading = heading::STAGING)]
    #[serde(default)]
    upstream_deny: Vec<String>,
    /// TLS certificate chain (PEM); reloaded when the file changes or on SIGHUP
    #[arg(long, env = "WHARFAGE_TLS_CERT", help_heading = heading::TLS)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert
    #[arg(long, env = "WHARFAGE_TLS_KEY", help_heading = heading::TLS)]
    tls_key: Option<PathBuf>,
    /// Users (Apache htpasswd, bcrypt entries): turns access control on
    #[arg(long, env = "WHARFAGE_HTPASSWD", help_heading = heading::ACCESS)]
    htpasswd: Option<PathBuf>,
    /// A user who may do everything, the management API included; repeatable
    #[arg(long = "admin", env = "WHARFAGE_ADMINS", value_delimiter = ',', help_heading = heading::ACCESS)]
    #[serde(default)]
    admins: Vec<String>,
    /// A user who may stage and manage apps through the management API (not collect
    /// garbage); repeatable
    #[arg(long = "stager", env = "WHARFAGE_STAGERS", value_delimiter = ',', help_heading = heading::ACCESS)]
    #[serde(default)]
    stagers: Vec<String>,
    /// Repository rules (TOML only): `[[access]]` tables of users, repositories, actions
    #[arg(skip)]
    #[serde(default)]
    access: Vec<auth::Rule>,
    /// Mirror a registry for engines that name wharfage as its mirror: REGISTRY=URL, e.g.
    /// docker.io=https://registry-1.docker.io (URL optional); repeatable. `[[mirror]]` tables
    /// in the file take credentials and settings (docs/mirror.md)
    #[arg(long = "mirror", env = "WHARFAGE_MIRRORS", value_delimiter = ',', help_heading = heading::MIRROR)]
    #[serde(default)]
    mirrors: Vec<String>,
    /// Mirrored registries (TOML only): `[[mirror]]` tables (docs/mirror.md)
    #[arg(skip)]
    #[serde(default)]
    mirror: Vec<mirror::MirrorTable>,
    /// Lifetime of registry tokens [default: 5m]
    #[arg(long, env = "WHARFAGE_TOKEN_TTL", help_heading = heading::ACCESS)]
    token_ttl: Option<String>,
    /// PEM private key (Ed25519 or P-256) to sign tokens with [default: a key kept in the store]
    #[arg(long, env = "WHARFAGE_TOKEN_KEY", help_heading = heading::ACCESS)]
    token_key: Option<PathBuf>,
    /// The URL clients reach this registry at, e.g. https://registry.example.com: the token
    /// realm and the host of pinned image references [default: from each request]
    #[arg(long, env = "WHARFAGE_PUBLIC_URL", help_heading = heading::LISTEN)]
    public_url: Option<String>,
    /// Serve without access control on a non-loopback address: anyone who reaches it may
    /// pull, push, delete and manage
    #[arg(long, env = "WHARFAGE_ANONYMOUS", num_args = 0..=1, default_missing_value = "true", help_heading = heading::ACCESS)]
    anonymous: Option<bool>,
    }
}

/// Where the registry keeps its data.
#[derive(Debug)]
pub(crate) enum Storage {
    Fs(PathBuf),
    S3 { config: store::S3Config, redirect: bool, blob_cache: Option<store::BlobCacheConfig> },
}

/// The resolved configuration of `serve`.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub listen: String,
    pub storage: Storage,
    pub log_format: LogFormat,
    pub log: String,
    pub upstream: upstream::UpstreamConfig,
    pub stage_concurrency: usize,
    pub gc: store::GcOptions,
    pub gc_interval: Option<std::time::Duration>,
    /// What pushed manifests must reference that the repository holds.
    pub completeness: server::ManifestCompleteness,
    pub uploads: store::UploadLimits,
    /// S3 only: how long a replica serves a tag it read (`store::StoreBuilder::tag_cache_ttl`).
    pub tag_cache_ttl: std::time::Duration,
    pub connections: server::ConnectionLimits,
    pub access: AccessConfig,
    pub mirrors: Vec<server::mirror::MirrorConfig>,
}

/// `--manifest-completeness`, with the older `--require-complete-indexes` as an alias of
/// `complete`; the two saying different things is a configuration error, not a guess.
fn completeness(given: Option<Completeness>, legacy: Option<bool>) -> Result<Completeness, CliError> {
    match (given, legacy) {
        (Some(c), Some(true)) if c != Completeness::Complete => Err(CliError::Config(format!(
            "require_complete_indexes = true means manifest_completeness = complete, but manifest_completeness is {}",
            c.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
        ))),
        (Some(c), _) => Ok(c),
        (None, Some(true)) => Ok(Completeness::Complete),
        (None, _) => Ok(Completeness::Indexes),
    }
}

impl ServeConfig {
    /// Merges flags/environment over the config file over defaults.
    pub(crate) fn load(args: ServeArgs) -> Result<Self, CliError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<ServeArgs>(&text).map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?
            }
            None => ServeArgs::default(),
        };
        let s = args.over(file);
        let gc_defaults = store::GcOptions::default();
        let blob_cache_dir = s.blob_cache_dir;
        let blob_cache_size = match s.blob_cache_size {
            Some(_) if blob_cache_dir.is_none() => {
                return Err(CliError::Config("blob_cache_size needs blob_cache_dir: where should the cache go?".into()))
            }
            Some(v) => parse_size("blob_cache_size", &v)?,
            None => 10 << 30,
        };
        let storage = match s.storage.unwrap_or(StorageKind::Fs) {
            StorageKind::Fs if blob_cache_dir.is_some() => {
                return Err(CliError::Config(
                    "blob_cache_dir is for --storage s3 only: the filesystem backend reads its blobs locally already".into(),
                ))
            }
            StorageKind::Fs => Storage::Fs(s.root.unwrap_or_else(|| "wharfage-data".into())),
            StorageKind::S3 => {
                let required = |v: Option<String>, flag: &str| {
                    v.ok_or_else(|| {
                        CliError::Config(format!("--storage s3 needs --{flag} (or WHARFAGE_{})", flag.to_uppercase().replace('-', "_")))
                    })
                };
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                Storage::S3 {
                    config: store::S3Config {
                        endpoint: required(s.s3_endpoint, "s3-endpoint")?,
                        bucket: required(s.s3_bucket, "s3-bucket")?,
                        region: s.s3_region.unwrap_or_else(|| "us-east-1".into()),
                        prefix: s.s3_prefix,
                        access_key_id: env("AWS_ACCESS_KEY_ID").or(s.s3_access_key_id),
                        secret_access_key: env("AWS_SECRET_ACCESS_KEY").or(s.s3_secret_access_key),
                    },
                    redirect: s.s3_redirect.unwrap_or(false),
                    blob_cache: blob_cache_dir.map(|dir| store::BlobCacheConfig { dir, max_bytes: blob_cache_size }),
                }
            }
        };
        let tag_cache_ttl =
            match (s.tag_cache_ttl, &storage) {
                (Some(_), Storage::Fs(_)) => return Err(CliError::Config(
                    "tag_cache_ttl is for --storage s3 only: on the filesystem one process sees every change, so tags are always current"
                        .into(),
                )),
                (Some(v), Storage::S3 { .. }) => parse_duration("tag_cache_ttl", &v)?,
                (None, _) => store::DEFAULT_TAG_CACHE_TTL,
            };
        let insecure = s.insecure_registries;
        let extra_ca_pem = match s.upstream_ca {
            Some(path) => Some(std::fs::read(&path).map_err(|e| CliError::Config(format!("upstream CA bundle {}: {e}", path.display())))?),
            None => None,
        };
        let read_timeout = match s.upstream_timeout {
            Some(v) => parse_duration("upstream_timeout", &v)?,
            None => upstream::UpstreamConfig::default().read_timeout,
        };
        if read_timeout.is_zero() {
            return Err(CliError::Config("upstream_timeout must be at least 1s".into()));
        }
        let up_defaults = upstream::UpstreamConfig::default();
        let range_size = match s.upstream_range_size {
            Some(v) => parse_size("upstream_range_size", &v)?,
            None => up_defaults.range_size,
        };
        if range_size > up_defaults.range_budget {
            return Err(CliError::Config(format!(
                "upstream_range_size must be at most {} MiB, what a staging may buffer",
                up_defaults.range_budget >> 20
            )));
        }
        let range_parallel = at_least_one("upstream_range_parallel", s.upstream_range_parallel, up_defaults.range_parallel)?;
        let upstream = upstream::UpstreamConfig { insecure, extra_ca_pem, read_timeout, range_size, range_parallel, ..up_defaults };
        let stage_concurrency = s.stage_concurrency.unwrap_or(stage::DEFAULT_CONCURRENCY);
        if stage_concurrency == 0 {
            return Err(CliError::Config("stage_concurrency must be at least 1".into()));
        }
        let grace = match s.gc_grace {
            Some(v) => parse_duration("gc_grace", &v)?,
            None => gc_defaults.grace,
        };
        let gc_interval = match s.gc_interval {
            Some(v) if v != "off" && v != "0" => Some(parse_duration("gc_interval", &v)?),
            _ => None,
        };
        let protect_window = match s.gc_protect_window {
            Some(v) => parse_duration("gc_protect_window", &v)?,
            None => gc_defaults.protect_window,
        };
        let defaults = store::UploadLimits::default();
        let uploads = store::UploadLimits {
            expiry: match s.upload_expiry {
                Some(v) => positive("upload_expiry", parse_duration("upload_expiry", &v)?)?,
                None => defaults.expiry,
            },
            max_sessions: at_least_one("max_uploads", s.max_uploads, defaults.max_sessions)?,
            max_per_repository: at_least_one("max_uploads_per_repository", s.max_uploads_per_repository, defaults.max_per_repository)?,
        };
        let gc = store::GcOptions {
            dry_run: false,
            grace,
            retain: s.retain.unwrap_or(gc_defaults.retain),
            protect_window,
            upload_expiry: uploads.expiry,
            mirrored: Vec::new(),
        };
        let conn = server::ConnectionLimits::default();
        let connections = server::ConnectionLimits {
            max_connections: at_least_one("max_connections", s.max_connections, conn.max_connections)?,
            backlog: s.listen_backlog.unwrap_or(conn.backlog).max(1),
            header_timeout: match s.header_timeout {
                Some(v) => positive("header_timeout", parse_duration("header_timeout", &v)?)?,
                None => conn.header_timeout,
            },
            body_timeout: match s.body_timeout {
                Some(v) => positive("body_timeout", parse_duration("body_timeout", &v)?)?,
                None => conn.body_timeout,
            },
        };
        let listen = s.listen.unwrap_or_else(|| "127.0.0.1:5000".into());
        let access = AccessConfig::resolve(
            access::AccessArgs {
                listen: ListenAddr(&listen),
                tls_cert: s.tls_cert,
                tls_key: s.tls_key,
                htpasswd: s.htpasswd,
                admins: s.admins,
                stagers: s.stagers,
                rules: s.access,
                token_ttl: s.token_ttl,
                token_key: s.token_key,
                public_url: s.public_url,
                anonymous: s.anonymous.unwrap_or(false),
            },
            gc.retain,
        )?;
        let (allow, deny) = (s.upstream_allow, s.upstream_deny);
        let mirrors = mirror::resolve(s.mirrors, s.mirror)?;
        let mirrored = mirrors
            .iter()
            .map(|m| store::MirrorRetention {
                prefix: server::mirror::registry_key(&m.registry),
                retention: m.retention,
                max_size: m.max_size,
            })
            .collect();
        let gc = store::GcOptions { mirrored, ..gc };
        let mut upstream = upstream::UpstreamConfig {
            hosts: upstream::HostPolicy::new(&allow, &deny).map_err(|e| CliError::Config(e.to_string()))?,
            ..upstream
        };
        // A mirror whose URL says http is reached over plain HTTP: the operator wrote so.
        for m in &mirrors {
            if let Ok((host, true)) = server::mirror::upstream_host(&m.url) {
                upstream.insecure.push(host);
            }
        }
        Ok(ServeConfig {
            uploads,
            tag_cache_ttl,
            connections,
            upstream,
            stage_concurrency,
            gc,
            gc_interval,
            completeness: completeness(s.manifest_completeness, s.require_complete_indexes)?.into(),
            access,
            mirrors,
            listen,
            storage,
            log_format: s.log_format.unwrap_or(LogFormat::Text),
            log: s.log.unwrap_or_else(|| "info".into()),
        })
    }
}

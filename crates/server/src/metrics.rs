//! Operations endpoints: `/metrics` (Prometheus text format), `/healthz` (the process serves)
//! and `/readyz` (the store answers too), for probes and dashboards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use store::Store;

use crate::error::error_response;
use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: &'static str,
    method: &'static str,
}

/// Upper bounds of the latency buckets, in seconds: from a cached manifest HEAD (about a
/// millisecond) to a multi-GiB blob or a staging (minutes).
const LATENCY_BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The class of a request's route, a bounded label (never the repository or digest).
fn route_class(path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v2/") {
        return if rest.is_empty() {
            "v2_base"
        } else if rest == "_catalog" {
            "catalog"
        } else if rest.contains("/blobs/uploads") {
            "upload"
        } else if rest.contains("/blobs/") {
            "blob"
        } else if rest.contains("/manifests/") {
            "manifest"
        } else if rest.ends_with("/tags/list") {
            "tags"
        } else if rest.contains("/referrers/") {
            "referrers"
        } else {
            "v2_other"
        };
    }
    match path {
        "/v2" => "v2_base",
        "/metrics" | "/healthz" | "/readyz" => "ops",
        "/auth/token" => "token",
        p if p.starts_with("/api/v1/stagings") => "staging",
        p if p.starts_with("/api/v1/") => "api",
        p if p == "/ui" || p.starts_with("/ui/") => "console",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    registry: String,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorErrorLabels {
    registry: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

/// The metrics a server keeps; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    stored_bytes: Gauge,
    stored_blobs: Gauge,
    store: Store,
    usage_running: Arc<AtomicBool>,
    stagings: Family<StatusLabels, Counter>,
    staged_bytes: Family<SourceLabels, Counter>,
    gc_runs: Counter,
    gc_blobs: Counter,
    gc_bytes: Counter,
    mirror_requests: Family<MirrorLabels, Counter>,
    mirror_errors: Family<MirrorErrorLabels, Counter>,
    mirror_bytes: Family<RegistryLabels, Counter>,
}

impl Metrics {
    /// Metrics of a server over `store` (whose blob cache, if any, is reported at each scrape).
    pub fn new(store: Store) -> Self {
        // The process metrics carry their usual names (`process_*`); wharfage's own its prefix.
        let mut root = Registry::default();
        #[cfg(target_os = "linux")]
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("wharfage");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by method and status", requests.clone());
        let latency: Family<LatencyLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to its response head; a blob body streams on after it), by route class and method",
            latency.clone(),
        );
        let (stored_bytes, stored_blobs) = (Gauge::default(), Gauge::default());
        registry.register(
            "stored_bytes",
            "Bytes of the blobs in the store, each counted once; computed at start-up and after each garbage collection",
            stored_bytes.clone(),
        );
        registry.register("stored_blobs", "Blobs in the store; computed like stored_bytes", stored_blobs.clone());
        let stagings = Family::<StatusLabels, Counter>::default();
        registry.register("stagings", "Stagings finished, by the HTTP status of their result", stagings.clone());
        let staged_bytes = Family::<SourceLabels, Counter>::default();
        registry.register(
            "staged_bytes",
            "Blob bytes of successful stagings, downloaded from the upstream or reused from the store",
            staged_bytes.clone(),
        );
        let (gc_runs, gc_blobs, gc_bytes) = (Counter::default(), Counter::default(), Counter::default());
        registry.register("gc_runs", "Garbage collections run to the end (dry runs excluded)", gc_runs.clone());
        registry.register("gc_removed_blobs", "Blobs removed by garbage collection", gc_blobs.clone());
        registry.register("gc_removed_bytes", "Blob bytes removed by garbage collection", gc_bytes.clone());
        registry.register_collector(Box::new(BlobCacheCollector(store.clone())));
        let mirror_requests = Family::<MirrorLabels, Counter>::default();
        registry.register(
            "mirror_requests",
            "Mirror manifest and blob requests by registry and outcome: hit (served from the store), miss (fetched), \
             stale (a stored tag served while the upstream failed), coalesced (followed another client's fetch)",
            mirror_requests.clone(),
        );
        let mirror_errors = Family::<MirrorErrorLabels, Counter>::default();
        registry.register("mirror_upstream_errors", "Upstream failures of mirrors, by registry and kind", mirror_errors.clone());
        let mirror_bytes = Family::<RegistryLabels, Counter>::default();
        registry.register("mirror_upstream_bytes", "Bytes mirrors fetched from their upstreams", mirror_bytes.clone());
        Metrics {
            registry: Arc::new(root),
            requests,
            latency,
            stored_bytes,
            stored_blobs,
            store,
            usage_running: Arc::new(AtomicBool::new(false)),
            stagings,
            staged_bytes,
            gc_runs,
            gc_blobs,
            gc_bytes,
            mirror_requests,
            mirror_errors,
            mirror_bytes,
        }
    }

    /// Counts a mirror request's outcome.
    pub(crate) fn mirror(&self, registry: &str, event: crate::mirror::MirrorEvent) {
        let event = match event {
            crate::mirror::MirrorEvent::Hit => "hit",
            crate::mirror::MirrorEvent::Miss => "miss",
            crate::mirror::MirrorEvent::Stale => "stale",
            crate::mirror::MirrorEvent::Coalesced => "coalesced",
        };
        self.mirror_requests.get_or_create(&MirrorLabels { registry: registry.to_string(), event }).inc();
    }

    /// Counts an upstream failure of a mirror by kind.
    pub(crate) fn mirror_error(&self, registry: &str, e: &upstream::UpstreamError) {
        use upstream::UpstreamError as E;
        let kind = match e {
            E::Unreachable { .. } => "unreachable",
            E::Timeout { .. } => "timeout",
            E::Status { status: 429, .. } => "rate_limited",
            E::Status { .. } => "status",
            E::Unauthorized { .. } | E::CredentialsRequired { .. } | E::Denied { .. } => "refused_credentials",
            E::NotFound { .. } => "not_found",
            E::Refused { .. } => "host_policy",
            E::Untrusted { .. } | E::PlainHttp { .. } => "tls",
            E::DigestMismatch { .. } | E::SizeMismatch { .. } | E::Schema1 { .. } => "content",
            E::Protocol { .. } | E::Config(_) => "protocol",
        };
        self.mirror_errors.get_or_create(&MirrorErrorLabels { registry: registry.to_string(), kind }).inc();
    }

    /// Counts bytes a mirror fetched from its upstream.
    pub(crate) fn mirror_bytes(&self, registry: &str, bytes: u64) {
        self.mirror_bytes.get_or_create(&RegistryLabels { registry: registry.to_string() }).inc_by(bytes);
    }

    /// Counts a finished staging: its answer's status, and for a success the bytes it moved.
    pub(crate) fn staging(&self, status: u16, record: Option<&store::StagingRecord>) {
        self.stagings.get_or_create(&StatusLabels { status }).inc();
        if let Some(r) = record {
            self.staged_bytes.get_or_create(&SourceLabels { source: "upstream" }).inc_by(r.bytes_downloaded);
            self.staged_bytes.get_or_create(&SourceLabels { source: "store" }).inc_by(r.bytes_reused);
        }
    }

    /// Counts a garbage collection that ran to the end (dry runs change nothing: not counted),
    /// and measures what the store holds now.
    pub fn gc(&self, report: &store::GcReport) {
        if !report.dry_run {
            self.gc_runs.inc();
            self.gc_blobs.inc_by(report.blobs.count);
            self.gc_bytes.inc_by(report.blobs.bytes);
            self.refresh_usage();
        }
    }

    /// Measures the store's size in the background (a walk of the store: at start-up and
    /// after a collection, never per scrape); one walk at a time, none outside a runtime.
    pub fn refresh_usage(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.usage_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        runtime.spawn(async move {
            match me.store.usage().await {
                Ok(u) => {
                    me.stored_bytes.set(i64::try_from(u.stored_bytes).unwrap_or(i64::MAX));
                    me.stored_blobs.set(i64::try_from(u.blobs).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::warn!(error = %e, "cannot measure the store for /metrics"),
            }
            me.usage_running.store(false, Ordering::SeqCst);
        });
    }

    fn count(&self, method: &http::Method, route: &'static str, status: StatusCode, seconds: f64) {
        // Only the methods the APIs use, so a client cannot grow the label set.
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::PUT => "PUT",
            http::Method::POST => "POST",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            _ => "OTHER",
        };
        self.requests.get_or_create(&RequestLabels { method, status: status.as_u16() }).inc();
        self.latency.get_or_create(&LatencyLabels { route, method }).observe(seconds);
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The blob cache's figures, read from the store at each scrape.
struct BlobCacheCollector(Store);

impl std::fmt::Debug for BlobCacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCacheCollector")
    }
}

impl Collector for BlobCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = self.0.blob_cache_stats() else { return Ok(()) };
        let gauges = [
            ("blob_cache_blobs", "Blobs in the local blob cache", s.blobs),
            ("blob_cache_bytes", "Bytes in the local blob cache", s.bytes),
            ("blob_cache_max_bytes", "Size limit of the local blob cache", s.max_bytes),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let counters = [
            ("blob_cache_hits", "Blob reads answered from the local blob cache", s.hits),
            ("blob_cache_misses", "Blob reads that went to the object store", s.misses),
            ("blob_cache_fill_joins", "Blob reads that followed a cache fill in progress instead of the object store", s.fill_joins),
            ("blob_cache_fills", "Blobs written into the local blob cache", s.fills),
            ("blob_cache_fills_dropped", "Blob cache fills given up (store read failed, bytes not verified, disk error)", s.fills_dropped),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

/// The process's own figures, read from `/proc` at each scrape (a few small files), under
/// the names Prometheus client libraries use.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct ProcessCollector;

#[cfg(target_os = "linux")]
impl ProcessCollector {
    /// Clock ticks per second of `/proc/*/stat` times: USER_HZ, 100 on every Linux
    /// architecture wharfage builds for (x86, arm, riscv), fixed by the kernel's ABI.
    const TICKS: f64 = 100.0;

    /// (CPU seconds, start time in seconds since the epoch) from `/proc/self/stat` and `/proc/stat`.
    fn times() -> Option<(f64, f64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may hold spaces and parentheses: field 3 on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let cpu = (field(14)? + field(15)?) / Self::TICKS;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))?;
        Some((cpu, boot + field(22)? / Self::TICKS))
    }

    /// Resident memory in bytes, from `VmRSS` of `/proc/self/status` (kB).
    fn rss() -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse::<i64>().ok()?;
        Some(kb * 1024)
    }

    /// The soft limit of open files, from `/proc/self/limits`.
    fn max_fds() -> Option<i64> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        limits.lines().find_map(|l| l.strip_prefix("Max open files")).and_then(|v| v.split_whitespace().next()?.parse().ok())
    }
}

#[cfg(target_os = "linux")]
impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((cpu, start)) = Self::times() {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                c.metric_type(),
            )?)?;
            let g = ConstGauge::new(start);
            g.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(rss) = Self::rss() {
            let g = ConstGauge::new(rss);
            g.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let g = ConstGauge::new(dir.count() as i64);
            g.encode(encoder.encode_descriptor("process_open_fds", "Open file descriptors", None, g.metric_type())?)?;
        }
        if let Some(max) = Self::max_fds() {
            let g = ConstGauge::new(max);
            g.encode(encoder.encode_descriptor("process_max_fds", "Most file descriptors the process may open", None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// The probes: open to anyone, they say nothing but "up" and "ready".
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// Counts every answer, whatever route gave it.
pub(crate) async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (method, route) = (req.method().clone(), route_class(req.uri().path()));
    let started = Instant::now();
    let resp = next.run(req).await;
    state.metrics.count(&method, route, resp.status(), started.elapsed().as_secs_f64());
    resp
}

/// `/metrics`: repository and app activity (admins only when access control is on; see
/// `mgmt::routes`).
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => {
            let mut r = Response::new(Body::from(text));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
            r
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", &format!("encoding metrics: {e}"), None),
    }
}

/// Liveness: the process serves requests.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers and takes writes (a replica whose store is down or refuses
/// writes answers 503 with why; the write is checked at most every few seconds).
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ready().await {
        Ok(()) => "ok\n".into_response(),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", &format!("{}: {e}", state.store.describe()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::route_class;

    #[test]
    fn routes_fall_into_a_few_classes() {
        for (path, class) in [
            ("/v2/", "v2_base"),
            ("/v2/library/redis/blobs/sha256:abc", "blob"),
            ("/v2/a/b/blobs/uploads/123", "upload"),
            ("/v2/a/manifests/v1", "manifest"),
            ("/v2/a/tags/list", "tags"),
            ("/v2/_catalog", "catalog"),
            ("/api/v1/stagings", "staging"),
            ("/api/v1/apps/x", "api"),
            ("/ui/apps", "console"),
            ("/metrics", "ops"),
            ("/anything/else", "other"),
        ] {
            assert_eq!(route_class(path), class, "{path}");
        }
    }
}

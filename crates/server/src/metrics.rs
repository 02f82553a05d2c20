//! Operations endpoints: `/metrics` (Prometheus text format), `/healthz` (the process serves)
//! and `/readyz` (the store answers too), for probes and dashboards.

use std::sync::Arc;

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
use prometheus_client::metrics::gauge::ConstGauge;
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
        let mut registry = Registry::with_prefix("wharfage");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by method and status", requests.clone());
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
        registry.register_collector(Box::new(BlobCacheCollector(store)));
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
            registry: Arc::new(registry),
            requests,
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

    /// Counts a garbage collection that ran to the end (dry runs change nothing: not counted).
    pub fn gc(&self, report: &store::GcReport) {
        if !report.dry_run {
            self.gc_runs.inc();
            self.gc_blobs.inc_by(report.blobs.count);
            self.gc_bytes.inc_by(report.blobs.bytes);
        }
    }

    fn count(&self, method: &http::Method, status: StatusCode) {
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

/// The probes: open to anyone, they say nothing but "up" and "ready".
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// Counts every answer, whatever route gave it.
pub(crate) async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    state.metrics.count(&method, resp.status());
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

/// Readiness: the store answers too (a replica whose store is down answers 503 with why).
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ok\n".into_response(),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", &format!("{}: {e}", state.store.describe()), None),
    }
}

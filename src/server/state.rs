//! What the handlers share: the runtime, the telemetry path, the request limiter and the
//! server's one scrape cache.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::app::Exporter;
use crate::metrics::cache::{ExporterSource, ScrapeCache};

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The shared runtime: the current targets and the outcome of the last (re)load.
    pub runtime: Arc<Exporter>,
    /// The path `/metrics` is served at (`--web.telemetry-path`).
    pub telemetry_path: String,
    pub(super) limiter: Arc<Semaphore>,
    /// The one scrape cache of `/metrics` and `/probe`: see [`crate::metrics::cache`].
    pub(super) cache: Arc<ScrapeCache>,
}

impl AppState {
    /// The state of a server of `runtime`'s targets, with an empty scrape cache.
    pub fn new(runtime: Arc<Exporter>, telemetry_path: &str, max_requests: usize) -> Self {
        AppState {
            cache: Arc::new(ScrapeCache::new(ExporterSource {
                status: runtime.reload_status.clone(),
                targets: runtime.targets.clone(),
                store: runtime.store().clone(),
            })),
            runtime,
            telemetry_path: telemetry_path.to_string(),
            limiter: Arc::new(Semaphore::new(max_requests.max(1))),
        }
    }

    /// The server's scrape cache.
    pub fn cache(&self) -> &Arc<ScrapeCache> {
        &self.cache
    }
}

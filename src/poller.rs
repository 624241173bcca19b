//! The poller: one task per target reads `/cluster` and `/state` every interval (with jitter,
//! the timeout, and capped backoff after failures) and publishes an immutable
//! [`TargetSnapshot`]. Scrapes only ever read the latest snapshot: they never wait for
//! Bitbucket and never cause a request to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rand::Rng;

use crate::client::{FetchError, PerReason, Reason, ZduClient};
use crate::config::TargetConfig;
use crate::model::{Cluster, ClusterFigures, StateResponse};
use crate::tracker::{StateStore, Tracked};

/// The two endpoints polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /rest/zdu/cluster`.
    Cluster,
    /// `GET /rest/zdu/state`.
    State,
}

impl Endpoint {
    /// Both endpoints, in the order they are polled and reported.
    pub const ALL: [Endpoint; 2] = [Endpoint::Cluster, Endpoint::State];
    /// The endpoint's name: its path segment and its `endpoint` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Cluster => "cluster",
            Endpoint::State => "state",
        }
    }
}

/// One value per [`Endpoint`]: a typed map instead of an array indexed by position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerEndpoint<T> {
    cluster: T,
    state: T,
}

impl<T> PerEndpoint<T> {
    /// The value for `ep`.
    pub fn get(&self, ep: Endpoint) -> &T {
        match ep {
            Endpoint::Cluster => &self.cluster,
            Endpoint::State => &self.state,
        }
    }

    /// The value for `ep`, to change it.
    pub fn get_mut(&mut self, ep: Endpoint) -> &mut T {
        match ep {
            Endpoint::Cluster => &mut self.cluster,
            Endpoint::State => &mut self.state,
        }
    }

    /// Every endpoint with its value, in the order of [`Endpoint::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (Endpoint, &T)> {
        Endpoint::ALL.into_iter().map(move |ep| (ep, self.get(ep)))
    }
}

/// Counters and last-poll figures of one endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    /// Polls sent, successful or not (`bitbucket_zdu_polls_total`).
    pub polls_total: u64,
    /// Failed polls by reason.
    pub errors_total: PerReason<u64>,
    /// How long the last poll took, in seconds; None before the first.
    pub last_duration_seconds: Option<f64>,
    /// When the last successful poll finished (unix seconds); None before one.
    pub last_success_timestamp: Option<f64>,
    /// The last error, if the last poll failed.
    pub last_error: Option<FetchError>,
}

/// A successful `/cluster` poll with its derived figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    /// The decoded answer.
    pub cluster: Cluster,
    /// Figures derived from it: distinct versions, nodes upgraded, ghosts.
    pub figures: ClusterFigures,
    /// When the cluster entered its current state (unix seconds); None when it has no state.
    pub cluster_since: Option<f64>,
    /// When each node entry entered its current state (unix seconds), in the answer's node order.
    pub node_since: Vec<f64>,
    /// When a node entry last changed state, appeared or disappeared (persisted).
    pub last_node_change: f64,
    /// Node names without a live entry, and since when (persisted).
    pub names_offline: Vec<(String, f64)>,
}

impl ClusterView {
    /// Folds a successful `/cluster` answer into `tracked` at unix time `now` and derives the
    /// figures. Also returns whether the tracked state changed (worth persisting).
    pub fn observe(cluster: Cluster, tracked: &mut Tracked, now: f64) -> (ClusterView, bool) {
        let figures = cluster.figures();
        let (observed, changed) = tracked.observe(&cluster, now);
        let progress_changed = tracked.progress.observe(&cluster, now);
        let view = ClusterView {
            cluster,
            figures,
            cluster_since: observed.cluster_since,
            node_since: observed.node_since,
            last_node_change: observed.last_node_change,
            names_offline: observed.names_offline,
        };
        (view, changed || progress_changed)
    }
}

/// Everything `/metrics` needs about one target, immutable once published.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    /// The target's configured name.
    pub target: String,
    /// The last `/cluster` poll's data, when that poll succeeded.
    pub cluster: Option<Arc<ClusterView>>,
    /// When that successful poll finished.
    pub cluster_at: Option<Instant>,
    /// The last `/state` poll's data, when that poll succeeded.
    pub responder: Option<Arc<StateResponse>>,
    /// When that successful poll finished.
    pub responder_at: Option<Instant>,
    /// Per endpoint, its counters and last-poll figures.
    pub endpoints: PerEndpoint<EndpointStats>,
    /// Cluster state transitions seen, `(from, to)` → count (persisted).
    pub transitions: BTreeMap<(String, String), u64>,
    /// `field` → count of unknown enum values seen.
    pub unknown_values: BTreeMap<&'static str, u64>,
    /// True once the first poll (success or failure) has finished.
    pub first_poll_done: bool,
    /// Freshness limit.
    pub max_age: Duration,
    /// `/cluster` polls failed in a row since the last success (drives the backoff).
    pub(crate) consecutive_failures: u32,
    /// Upgrade progress and history as of the last successful `/cluster` poll (persisted).
    pub progress: Arc<crate::tracker::progress::Progress>,
}

impl TargetSnapshot {
    /// The snapshot before any poll.
    pub fn empty(target: &TargetConfig, tracked: &Tracked) -> Self {
        TargetSnapshot {
            target: target.name().to_string(),
            cluster: None,
            cluster_at: None,
            responder: None,
            responder_at: None,
            endpoints: Default::default(),
            transitions: tracked.transitions.clone(),
            unknown_values: BTreeMap::new(),
            first_poll_done: false,
            max_age: target.max_age(),
            consecutive_failures: 0,
            progress: Arc::new(tracked.progress.clone()),
        }
    }

    /// The cluster data if the last `/cluster` poll succeeded and is no older than max age.
    pub fn fresh_cluster(&self, now: Instant) -> Option<&ClusterView> {
        match (&self.cluster, self.cluster_at) {
            (Some(c), Some(at)) if now.saturating_duration_since(at) <= self.max_age => Some(c),
            _ => None,
        }
    }

    /// The responder if the last `/state` poll succeeded and is fresh.
    pub fn fresh_responder(&self, now: Instant) -> Option<&StateResponse> {
        match (&self.responder, self.responder_at) {
            (Some(r), Some(at)) if now.saturating_duration_since(at) <= self.max_age => Some(r),
            _ => None,
        }
    }

    /// Why the target is down right now, or None when up: the last `/cluster` poll's failure
    /// reason, else `stale` (callers check `first_poll_done` first).
    pub fn down_reason(&self, now: Instant) -> Option<&'static str> {
        if self.fresh_cluster(now).is_some() {
            return None;
        }
        if let Some(e) = &self.endpoints.get(Endpoint::Cluster).last_error {
            return Some(e.reason().as_str());
        }
        Some("stale")
    }
}

/// Shared handle of one target: the config and the latest snapshot.
#[derive(Debug)]
pub struct TargetShared {
    /// The target's configuration, swapped on reload.
    pub config: ArcSwap<TargetConfig>,
    /// The latest snapshot, swapped after every poll round.
    pub snapshot: ArcSwap<TargetSnapshot>,
    /// The expositions rendered from the snapshot last served (see [`crate::metrics::cache`]).
    pub cache: crate::metrics::cache::TargetCache,
}

impl TargetShared {
    /// A handle with an empty snapshot.
    pub fn new(config: TargetConfig, tracked: &Tracked) -> Arc<Self> {
        let snap = TargetSnapshot::empty(&config, tracked);
        Arc::new(TargetShared {
            config: ArcSwap::from_pointee(config),
            snapshot: ArcSwap::from_pointee(snap),
            cache: Default::default(),
        })
    }

    /// Publishes a new snapshot and drops the expositions of the previous one.
    pub fn publish(&self, snapshot: TargetSnapshot) {
        self.snapshot.store(Arc::new(snapshot));
        self.cache.clear();
    }

    /// Target name.
    pub fn name(&self) -> String {
        self.config.load().name().to_string()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The delay before the next poll: the interval ±10 % jitter, or capped exponential backoff
/// after consecutive failures (interval × 2^(n-1), at most 8 × interval and 5 min, never less
/// than the interval).
pub fn next_delay(interval: Duration, consecutive_failures: u32, jitter: f64) -> Duration {
    let base = if consecutive_failures == 0 {
        interval
    } else {
        let factor = 1u32 << (consecutive_failures - 1).min(3);
        let cap = (interval * 8).min(Duration::from_secs(300)).max(interval);
        (interval * factor).min(cap)
    };
    base.mul_f64((1.0 + jitter.clamp(-0.1, 0.1)).max(0.0))
}

/// One target's poll loop state.
pub struct Poller {
    client: ZduClient,
    shared: Arc<TargetShared>,
    store: Arc<StateStore>,
    tracked: Tracked,
    last_logged_reason: PerEndpoint<Option<Reason>>,
}

impl Poller {
    /// Prepares a poller; counters continue from the handle's current snapshot.
    pub fn new(client: ZduClient, shared: Arc<TargetShared>, store: Arc<StateStore>) -> Self {
        let tracked = store.get(client.target().name());
        Poller {
            client,
            shared,
            store,
            tracked,
            last_logged_reason: PerEndpoint::default(),
        }
    }

    /// Polls forever (until the task is aborted).
    pub async fn run(mut self) {
        loop {
            self.poll_once().await;
            let failures = self.shared.snapshot.load().consecutive_failures;
            let jitter = rand::rng().random_range(-0.1..=0.1);
            let delay = next_delay(self.client.target().poll_interval(), failures, jitter);
            tokio::time::sleep(delay).await;
        }
    }

    /// Polls both endpoints once and publishes the new snapshot.
    pub async fn poll_once(&mut self) {
        let started = Instant::now();
        let (cluster, state) =
            tokio::join!(timed(self.client.cluster()), timed(self.client.state()));
        let target = self.client.target().clone();
        let prev = self.shared.snapshot.load_full();
        let mut next = TargetSnapshot::clone(&prev);
        next.max_age = target.max_age();
        next.first_poll_done = true;

        self.record(
            &mut next,
            Endpoint::Cluster,
            cluster.0,
            cluster.1.as_ref().err(),
        );
        self.record(&mut next, Endpoint::State, state.0, state.1.as_ref().err());

        match cluster.1 {
            Ok(c) => {
                count_unknown(&mut next, &c);
                let (view, changed) = ClusterView::observe(c, &mut self.tracked, unix_now());
                if changed {
                    self.persist();
                }
                next.transitions = self.tracked.transitions.clone();
                next.progress = Arc::new(self.tracked.progress.clone());
                next.cluster = Some(Arc::new(view));
                next.cluster_at = Some(Instant::now());
                next.consecutive_failures = 0;
            }
            Err(_) => {
                next.cluster = None;
                next.cluster_at = None;
                next.consecutive_failures = next.consecutive_failures.saturating_add(1);
            }
        }
        match state.1 {
            Ok(s) => {
                if s.build_info
                    .as_ref()
                    .and_then(|b| b.state.as_ref())
                    .is_some_and(|st| st.is_unknown())
                {
                    *next.unknown_values.entry("responder_state").or_insert(0) += 1;
                }
                next.responder = Some(Arc::new(s));
                next.responder_at = Some(Instant::now());
            }
            Err(_) => {
                next.responder = None;
                next.responder_at = None;
            }
        }
        tracing::debug!(target_name = %target.name(), elapsed_ms = started.elapsed().as_millis() as u64, "poll done");
        self.shared.publish(next);
    }

    fn record(
        &mut self,
        snap: &mut TargetSnapshot,
        ep: Endpoint,
        elapsed: Duration,
        err: Option<&FetchError>,
    ) {
        let stats = snap.endpoints.get_mut(ep);
        stats.polls_total += 1;
        stats.last_duration_seconds = Some(elapsed.as_secs_f64());
        let target = self.client.target().name();
        match err {
            None => {
                stats.last_success_timestamp = Some(unix_now());
                stats.last_error = None;
                if self.last_logged_reason.get_mut(ep).take().is_some() {
                    tracing::info!(target_name = %target, endpoint = ep.as_str(), "poll recovered");
                }
            }
            Some(e) => {
                let reason = e.reason();
                *stats.errors_total.get_mut(reason) += 1;
                stats.last_error = Some(e.clone());
                let logged = self.last_logged_reason.get_mut(ep);
                if *logged != Some(reason) {
                    *logged = Some(reason);
                    tracing::warn!(
                        target_name = %target,
                        endpoint = ep.as_str(),
                        url = %self.client.target().endpoint(ep.as_str()),
                        reason = reason.as_str(),
                        error = %e,
                        "poll failed"
                    );
                } else {
                    tracing::debug!(target_name = %target, endpoint = ep.as_str(), reason = reason.as_str(), "poll failed again");
                }
            }
        }
    }

    fn persist(&self) {
        // The store counts and logs a failure (once per distinct error, not per poll).
        let _ = self
            .store
            .put(self.client.target().name(), self.tracked.clone());
    }
}

fn count_unknown(snap: &mut TargetSnapshot, c: &Cluster) {
    if c.state.as_ref().is_some_and(|s| s.is_unknown()) {
        *snap.unknown_values.entry("cluster_state").or_insert(0) += 1;
    }
    let unknown_nodes = c
        .nodes
        .iter()
        .filter(|n| n.state.as_ref().is_some_and(|s| s.is_unknown()))
        .count() as u64;
    if unknown_nodes > 0 {
        *snap.unknown_values.entry("node_state").or_insert(0) += unknown_nodes;
    }
}

async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let out = fut.await;
    (start.elapsed(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let i = Duration::from_secs(30);
        assert_eq!(next_delay(i, 0, 0.0), i);
        assert_eq!(next_delay(i, 1, 0.0), i);
        assert_eq!(next_delay(i, 2, 0.0), i * 2);
        assert_eq!(next_delay(i, 3, 0.0), i * 4);
        assert_eq!(next_delay(i, 4, 0.0), i * 8);
        assert_eq!(next_delay(i, 40, 0.0), i * 8);
        assert_eq!(
            next_delay(Duration::from_secs(60), 9, 0.0),
            Duration::from_secs(300)
        );
        assert_eq!(
            next_delay(Duration::from_secs(600), 9, 0.0),
            Duration::from_secs(600)
        );
        assert_eq!(next_delay(i, 0, 0.1), Duration::from_secs(33));
        assert_eq!(next_delay(i, 0, 5.0), Duration::from_secs(33));
    }
}

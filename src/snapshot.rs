//! What a poll publishes: one immutable [`TargetSnapshot`] per target, swapped into its
//! [`TargetShared`] handle after every poll round. The poller ([`crate::poller`]) writes it;
//! the metrics ([`crate::metrics`]), the API projection ([`crate::api`]), the pages and the
//! `status` command read it. It holds decoded [`crate::model`] values only, so another
//! upstream (another product's upgrade API) is an adapter in [`crate::client`] and
//! [`crate::model`] that fills the same snapshot, not a second pipeline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::client::{FetchError, PerReason};
use crate::config::TargetConfig;
use crate::model::extras::ClusterExtras;
use crate::model::{Cluster, ClusterFigures, StateResponse};
use crate::tracker::progress::Progress;
use crate::tracker::Tracker;

/// The two endpoints polled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter, enum_map::Enum,
)]
#[strum(serialize_all = "lowercase")]
pub enum Endpoint {
    /// `GET /rest/zdu/cluster`.
    Cluster,
    /// `GET /rest/zdu/state`.
    State,
}

impl Endpoint {
    /// Both endpoints, in the order they are polled and reported.
    pub fn all() -> impl Iterator<Item = Endpoint> {
        <Endpoint as strum::IntoEnumIterator>::iter()
    }

    /// The endpoint's name: its path segment and its `endpoint` label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One value per [`Endpoint`]: a typed map instead of an array indexed by position.
pub type PerEndpoint<T> = enum_map::EnumMap<Endpoint, T>;

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
pub struct ClusterObservation {
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
    /// What Confluence or Jira report beyond Bitbucket's fields (empty for Bitbucket).
    pub extras: ClusterExtras,
}

impl ClusterObservation {
    /// Folds a successful `/cluster` answer into `tracked` at unix time `now` and derives the
    /// figures. Also returns whether the tracked state changed (worth persisting).
    pub fn observe(
        cluster: Cluster,
        tracked: &mut Tracker,
        now: f64,
    ) -> (ClusterObservation, bool) {
        let figures = cluster.figures();
        let (observed, changed) = tracked.observe(&cluster, now);
        let view = ClusterObservation {
            cluster,
            figures,
            cluster_since: observed.cluster_since,
            node_since: observed.node_since,
            last_node_change: observed.last_node_change,
            names_offline: observed.names_offline,
            extras: ClusterExtras::default(),
        };
        (view, changed)
    }

    /// [`observe`](Self::observe) for a product with extras: a node's own
    /// state-change time (Jira's `lastStateChangeTimestamp`) wins over the time the exporter
    /// first saw the state.
    pub fn observe_with(
        cluster: Cluster,
        extras: ClusterExtras,
        tracked: &mut Tracker,
        now: f64,
    ) -> (ClusterObservation, bool) {
        let (mut view, changed) = ClusterObservation::observe(cluster, tracked, now);
        for (i, since) in view.node_since.iter_mut().enumerate() {
            if let Some(t) = extras.node(i).state_changed_at {
                *since = t;
            }
        }
        view.extras = extras;
        (view, changed)
    }
}

/// Everything `/metrics` needs about one target, immutable once published.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    /// The target's configured name.
    pub target: String,
    /// The last `/cluster` poll's data, when that poll succeeded.
    pub cluster: Option<Arc<ClusterObservation>>,
    /// When that successful poll finished.
    pub cluster_at: Option<Instant>,
    /// The last `/state` poll's data, when that poll succeeded.
    pub responder: Option<Arc<StateResponse>>,
    /// When that successful poll finished.
    pub responder_at: Option<Instant>,
    /// Per endpoint, its counters and last-poll figures.
    pub endpoints: PerEndpoint<EndpointStats>,
    /// Cluster state transitions seen, `(from, to)` → count (persisted); shared with the
    /// snapshots before it until it changes.
    pub transitions: Arc<BTreeMap<(String, String), u64>>,
    /// `field` → count of unknown enum values seen.
    pub unknown_values: BTreeMap<&'static str, u64>,
    /// True once the first poll (success or failure) has finished.
    pub first_poll_done: bool,
    /// Freshness limit.
    pub max_age: Duration,
    /// Upgrade progress and history as of the last successful `/cluster` poll (persisted);
    /// shared with the snapshots before it until it changes.
    pub progress: Arc<Progress>,
}

impl TargetSnapshot {
    /// The snapshot before any poll.
    pub fn empty(target: &TargetConfig, tracked: &Tracker) -> Self {
        TargetSnapshot {
            target: target.name().to_string(),
            cluster: None,
            cluster_at: None,
            responder: None,
            responder_at: None,
            endpoints: Default::default(),
            transitions: Arc::new(tracked.transitions.clone()),
            unknown_values: BTreeMap::new(),
            first_poll_done: false,
            max_age: target.max_age(),
            progress: Arc::new(tracked.progress.clone()),
        }
    }

    /// The cluster data if the last `/cluster` poll succeeded and is no older than max age.
    pub fn fresh_cluster(&self, now: Instant) -> Option<&ClusterObservation> {
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

    /// How the target reads at `now`: the one place that decides pending, up or down, for
    /// the metrics, the pages, the JSON API and the `status` command alike.
    pub fn health(&self, now: Instant) -> Health<'_> {
        if !self.first_poll_done {
            return Health::Pending;
        }
        if let Some(view) = self.fresh_cluster(now) {
            return Health::Up(view);
        }
        match &self.endpoints[Endpoint::Cluster].last_error {
            Some(e) => Health::Down(e.reason().as_str()),
            None => Health::Down("stale"),
        }
    }
}

/// How a target reads at one instant ([`TargetSnapshot::health`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Health<'a> {
    /// No poll has finished yet.
    Pending,
    /// The last `/cluster` poll succeeded and is within the freshness limit.
    Up(&'a ClusterObservation),
    /// Not up: the last `/cluster` poll's failure reason, or `stale` when it succeeded
    /// longer ago than the freshness limit.
    Down(&'static str),
}

impl<'a> Health<'a> {
    /// True when up.
    pub fn is_up(&self) -> bool {
        matches!(self, Health::Up(_))
    }

    /// The fresh cluster data when up.
    pub fn cluster(&self) -> Option<&'a ClusterObservation> {
        match self {
            Health::Up(view) => Some(view),
            _ => None,
        }
    }

    /// Why not up: `pending`, a failure reason or `stale`; None when up.
    pub fn down_reason(&self) -> Option<&'static str> {
        match self {
            Health::Pending => Some("pending"),
            Health::Up(_) => None,
            Health::Down(reason) => Some(reason),
        }
    }
}

/// Shared handle of one target: the config and the latest snapshot.
#[derive(Debug)]
pub struct TargetShared {
    /// The target's configuration, swapped on reload.
    pub config: ArcSwap<TargetConfig>,
    /// The latest snapshot, swapped after every poll round.
    pub snapshot: ArcSwap<TargetSnapshot>,
}

impl TargetShared {
    /// A handle with an empty snapshot.
    pub fn new(config: TargetConfig, tracked: &Tracker) -> Arc<Self> {
        let snap = TargetSnapshot::empty(&config, tracked);
        Arc::new(TargetShared {
            config: ArcSwap::from_pointee(config),
            snapshot: ArcSwap::from_pointee(snap),
        })
    }

    /// Publishes a new snapshot: every reader loads it from now on.
    pub fn publish(&self, snapshot: TargetSnapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Target name.
    pub fn name(&self) -> String {
        self.config.load().name().to_string()
    }
}

//! The poller: one task per target reads `/cluster` and `/state` every interval (with jitter,
//! the timeout, and capped backoff after failures) and publishes an immutable
//! [`TargetSnapshot`]. Scrapes only ever read the latest snapshot: they never wait for
//! Bitbucket and never cause a request to it.
//!
//! A fleet: targets started together (at start, on a reload) are staggered
//! ([`first_poll_offset`]) instead of polling all at once, and a poll waits for a permit of
//! the exporter's poll budget ([`crate::sys::fds::FdBudget`]) so polls never take the
//! descriptors the server needs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::client::memo::ClusterReading;
use crate::client::{FetchError, Reason, ZduClient};
use crate::model::Cluster;
use crate::snapshot::{
    ClusterObservation, Endpoint, EndpointStats, PerEndpoint, TargetShared, TargetSnapshot,
};
use crate::sys::duration::unix_now;
use crate::tracker::progress::Progress;
use crate::tracker::{StateStore, Tracker};

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

/// Time between two targets' first polls when many start at once.
pub const START_STEP: Duration = Duration::from_millis(20);

/// The delay before the first poll of the `index`-th of `count` targets started together:
/// evenly staggered over `count` × [`START_STEP`], at most the poll interval. A lone target
/// polls at once; 1000 targets at 30 s start 50 a second over 20 s, and each keeps its place
/// in the interval afterwards (the ±10 % jitter drifts them apart, never together).
pub fn first_poll_offset(index: usize, count: usize, interval: Duration) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    let window = (START_STEP * u32::try_from(count).unwrap_or(u32::MAX)).min(interval);
    window.mul_f64(index.min(count - 1) as f64 / count as f64)
}

/// The longest tick of the poll grid ([`tick_of`]).
pub const MAX_TICK: Duration = Duration::from_secs(1);

/// The tick of the poll grid for a poll interval: a twentieth of the interval, at most
/// [`MAX_TICK`] (1 s at 30 s; 5 ms at 100 ms), well inside the interval's ±10 % jitter.
/// Measured (docs/performance.md): idle CPU of 1000 targets at 30 s was 0.57× main's at a
/// 100 ms tick, 0.41× at 250 ms and 0.36× at 1 s.
pub fn tick_of(interval: Duration) -> Duration {
    (interval / 20).min(MAX_TICK)
}

/// When a poll planned for `at` runs on a grid of `tick` from `grid`: the first tick at or
/// after `at` (never earlier than planned, at most one tick later). Polls due within one
/// tick of each other run together, on one wake-up of the runtime, instead of each waking it
/// on its own: with 1000 targets at 30 s, 33 wake-ups a second become 1, about 33 polls each,
/// still spread over the whole interval. An `at` before `grid`, or a zero tick, is kept.
pub fn on_tick(
    at: tokio::time::Instant,
    grid: tokio::time::Instant,
    tick: Duration,
) -> tokio::time::Instant {
    let (Some(since), false) = (at.checked_duration_since(grid), tick.is_zero()) else {
        return at;
    };
    let tick_ns = tick.as_nanos();
    let late = (tick_ns - since.as_nanos() % tick_ns) % tick_ns;
    // Less than one tick: it fits a u64 of nanoseconds.
    at + Duration::from_nanos(u64::try_from(late).unwrap_or(0))
}

/// One target's poll loop state. The loop keeps its own counters and builds each snapshot
/// from them; it never reads back what it published.
pub struct Poller {
    client: ZduClient,
    shared: Arc<TargetShared>,
    store: Arc<StateStore>,
    tracked: Tracker,
    last_logged_reason: PerEndpoint<Option<Reason>>,
    /// Per endpoint, its counters and last-poll figures.
    endpoints: PerEndpoint<EndpointStats>,
    /// `field` → count of unknown enum values seen.
    unknown_values: BTreeMap<&'static str, u64>,
    /// `/cluster` polls failed in a row since the last success (drives the backoff).
    consecutive_failures: u32,
    /// What the tracker last handed out, shared by every snapshot until it changes.
    transitions: Arc<BTreeMap<(String, String), u64>>,
    progress: Arc<Progress>,
    /// Delay before the first poll ([`first_poll_offset`]).
    first_delay: Duration,
    /// The exporter's poll budget: one permit per poll in progress.
    permits: Option<Arc<tokio::sync::Semaphore>>,
    /// The last cluster reading folded in, its view, and whether folding it changed nothing.
    last_cluster: Option<(Arc<ClusterReading>, Arc<ClusterObservation>, bool)>,
    /// The start of the poll grid shared by the exporter's pollers ([`on_tick`]); `None`:
    /// each poll runs when its delay ends.
    grid: Option<tokio::time::Instant>,
}

impl Poller {
    /// Prepares a poller; counters continue from the handle's current snapshot (a reload
    /// hands an existing target to a new poller).
    pub fn new(client: ZduClient, shared: Arc<TargetShared>, store: Arc<StateStore>) -> Self {
        let tracked = store.get(client.target().name());
        let prev = shared.snapshot.load_full();
        Poller {
            client,
            store,
            transitions: Arc::new(tracked.transitions.clone()),
            progress: Arc::new(tracked.progress.clone()),
            tracked,
            last_logged_reason: PerEndpoint::default(),
            endpoints: prev.endpoints.clone(),
            unknown_values: prev.unknown_values.clone(),
            consecutive_failures: 0,
            shared,
            first_delay: Duration::ZERO,
            permits: None,
            last_cluster: None,
            grid: None,
        }
    }

    /// The name of the target polled.
    pub fn target_name(&self) -> &str {
        self.client.target().name()
    }

    /// The target's poll interval.
    pub fn interval(&self) -> Duration {
        self.client.target().poll_interval()
    }

    /// Waits `first_delay` before the first poll, and takes one of `permits` for each poll.
    pub fn with_schedule(
        mut self,
        first_delay: Duration,
        permits: Option<Arc<tokio::sync::Semaphore>>,
    ) -> Self {
        self.first_delay = first_delay;
        self.permits = permits;
        self
    }

    /// Runs the polls after the first on the ticks of the grid that starts at `grid`
    /// ([`on_tick`]); pollers given the same `grid` share their wake-ups.
    pub fn on_grid(mut self, grid: tokio::time::Instant) -> Self {
        self.grid = Some(grid);
        self
    }

    /// Polls forever (until the task is aborted).
    pub async fn run(mut self) {
        tokio::time::sleep(self.first_delay).await;
        loop {
            let permit = match &self.permits {
                // Never closed: acquiring fails only on a closed semaphore.
                Some(p) => p.clone().acquire_owned().await.ok(),
                None => None,
            };
            self.poll_once().await;
            drop(permit);
            let jitter = rand::rng().random_range(-0.1..=0.1);
            let delay = next_delay(
                self.client.target().poll_interval(),
                self.consecutive_failures,
                jitter,
            );
            let at = tokio::time::Instant::now() + delay;
            match self.grid {
                Some(grid) => {
                    let tick = tick_of(self.client.target().poll_interval());
                    tokio::time::sleep_until(on_tick(at, grid, tick)).await;
                }
                None => tokio::time::sleep_until(at).await,
            }
        }
    }

    /// Polls both endpoints once and publishes the new snapshot.
    pub async fn poll_once(&mut self) {
        let started = Instant::now();
        // One call after the other on one connection, by one deadline (see
        // ZduClient::observe). On the heap for the poll's duration only: the requests' state
        // is some kilobytes, and kept inline it would stay in every target's task between polls.
        let (cluster, state) = Box::pin(self.client.observe()).await;
        self.record(Endpoint::Cluster, cluster.0, cluster.1.as_ref().err());
        self.record(Endpoint::State, state.0, state.1.as_ref().err());

        let cluster = match cluster.1 {
            Ok(reading) => {
                self.count_unknown(&reading.0);
                let view = self.view_of(reading);
                self.consecutive_failures = 0;
                Some((view, Instant::now()))
            }
            Err(_) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                None
            }
        };
        let responder = match state.1 {
            Ok(s) => {
                if s.build_info
                    .as_ref()
                    .and_then(|b| b.state.as_ref())
                    .is_some_and(|st| st.is_unknown())
                {
                    *self.unknown_values.entry("responder_state").or_insert(0) += 1;
                }
                Some((s, Instant::now()))
            }
            Err(_) => None,
        };
        let (cluster, cluster_at) = cluster.unzip();
        let (responder, responder_at) = responder.unzip();
        let target = self.client.target();
        self.shared.publish(TargetSnapshot {
            target: target.name().to_string(),
            cluster,
            cluster_at,
            responder,
            responder_at,
            endpoints: self.endpoints.clone(),
            transitions: self.transitions.clone(),
            unknown_values: self.unknown_values.clone(),
            first_poll_done: true,
            max_age: target.max_age(),
            progress: self.progress.clone(),
        });
        tracing::debug!(target_name = %target.name(), elapsed_ms = started.elapsed().as_millis() as u64, "poll done");
    }

    /// The cluster view of a successful reading, folded into the tracker. A reading that is
    /// the previous one itself (the upstream answered the same bytes, see
    /// [`crate::client::memo`]) whose folding changed nothing keeps the previous view: folding
    /// it again would change nothing either (the tracker stamps a time only on a change, so
    /// an unchanged answer at a later time is the same no-op), so the tracker is skipped.
    fn view_of(&mut self, reading: Arc<ClusterReading>) -> Arc<ClusterObservation> {
        if let Some((input, view, true)) = &self.last_cluster {
            if Arc::ptr_eq(input, &reading) {
                return view.clone();
            }
        }
        let (c, extras) = (*reading).clone();
        let (view, changed) =
            ClusterObservation::observe_with(c, extras, &mut self.tracked, unix_now());
        if changed {
            self.persist();
            self.transitions = Arc::new(self.tracked.transitions.clone());
            self.progress = Arc::new(self.tracked.progress.clone());
        }
        let view = Arc::new(view);
        self.last_cluster = Some((reading, view.clone(), !changed));
        view
    }

    fn record(&mut self, ep: Endpoint, elapsed: Duration, err: Option<&FetchError>) {
        let stats = &mut self.endpoints[ep];
        stats.polls_total += 1;
        stats.last_duration_seconds = Some(elapsed.as_secs_f64());
        let target = self.client.target().name();
        match err {
            None => {
                stats.last_success_timestamp = Some(unix_now());
                stats.last_error = None;
                if self.last_logged_reason[ep].take().is_some() {
                    tracing::info!(target_name = %target, endpoint = ep.as_str(), "poll recovered");
                }
            }
            Some(e) => {
                let reason = e.reason();
                stats.errors_total[reason] += 1;
                stats.last_error = Some(e.clone());
                let logged = &mut self.last_logged_reason[ep];
                if *logged != Some(reason) {
                    *logged = Some(reason);
                    tracing::warn!(
                        target_name = %target,
                        endpoint = ep.as_str(),
                        url = %self.client.endpoint_url(ep.as_str()),
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

    fn count_unknown(&mut self, c: &Cluster) {
        if c.state.as_ref().is_some_and(|s| s.is_unknown()) {
            *self.unknown_values.entry("cluster_state").or_insert(0) += 1;
        }
        let product = self.client.target().product();
        let unknown_nodes = c
            .nodes
            .iter()
            .filter(|n| {
                // Known to the target's product (Jira's PASSIVE, Confluence's finalization
                // states), not only to Bitbucket's model; for Bitbucket the two lists agree.
                n.state
                    .as_ref()
                    .is_some_and(|s| !product.node_states().contains(&s.as_str()))
            })
            .count() as u64;
        if unknown_nodes > 0 {
            *self.unknown_values.entry("node_state").or_insert(0) += unknown_nodes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_polls_are_staggered_evenly_within_the_interval() {
        let i = Duration::from_secs(30);
        assert_eq!(first_poll_offset(0, 1, i), Duration::ZERO);
        assert_eq!(first_poll_offset(0, 1000, i), Duration::ZERO);
        // 1000 targets: 20 s window, one every 20 ms, all distinct and increasing.
        let offsets: Vec<Duration> = (0..1000).map(|k| first_poll_offset(k, 1000, i)).collect();
        assert!(offsets.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(offsets[1], START_STEP);
        assert!(offsets[999] < Duration::from_secs(20));
        // 10 000 targets: the window is the interval, never longer.
        assert!(first_poll_offset(9_999, 10_000, i) < i);
        assert!(first_poll_offset(9_999, 10_000, i) > i.mul_f64(0.99));
        // A short interval bounds the window too.
        let short = Duration::from_millis(100);
        assert!(first_poll_offset(49, 50, short) < short);
        // An index past the count is the last place, not beyond.
        assert_eq!(first_poll_offset(7, 3, i), first_poll_offset(2, 3, i));
    }

    #[test]
    fn polls_wait_for_the_next_tick_of_the_grid_never_less() {
        use tokio::time::Instant;
        let grid = Instant::now();
        let tick = tick_of(Duration::from_secs(30));
        assert_eq!(tick, Duration::from_secs(1));
        assert_eq!(
            tick_of(Duration::from_millis(100)),
            Duration::from_millis(5)
        );
        let ms = |n: u64| Duration::from_millis(n);
        // On a tick: unchanged; just after one: the next; before the grid: unchanged.
        assert_eq!(on_tick(grid + ms(30_000), grid, tick), grid + ms(30_000));
        assert_eq!(on_tick(grid + ms(30_001), grid, tick), grid + ms(31_000));
        assert_eq!(on_tick(grid + ms(30_999), grid, tick), grid + ms(31_000));
        assert_eq!(on_tick(grid, grid + ms(10), tick), grid);
        assert_eq!(on_tick(grid + ms(7), grid, Duration::ZERO), grid + ms(7));
        // Any planned instant: on a tick, not earlier, less than one tick later.
        for k in 0..2_000u64 {
            let at = grid + Duration::from_micros(k * 7_919);
            let t = on_tick(at, grid, tick);
            assert!(t >= at && t - at < tick, "{k}");
            assert_eq!((t - grid).as_nanos() % tick.as_nanos(), 0, "{k}");
        }
    }

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

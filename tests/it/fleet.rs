//! A central exporter for a fleet: targets that share settings share one HTTP client, and
//! targets started together poll staggered, not all at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::app::Exporter;
use bitbucket_zdu_exporter::config::{Config, TargetConfig};
use bitbucket_zdu_exporter::poller::first_poll_offset;
use bitbucket_zdu_exporter::tracker::StateStore;

use crate::common::upstream::Mock;

const TARGETS: usize = 20;
const INTERVAL: Duration = Duration::from_secs(10);

fn fleet(url: &str, timeouts: &[Duration]) -> Vec<TargetConfig> {
    (0..TARGETS)
        .map(|i| {
            TargetConfig::builder(format!("t{i:02}"), format!("{url}/ctx{i}"))
                .poll_interval(INTERVAL)
                .timeout(timeouts[i % timeouts.len()])
                .build()
                .unwrap()
        })
        .collect()
}

fn start(targets: Vec<TargetConfig>) -> Arc<Exporter> {
    let cfg = Config::builder(targets).build().unwrap();
    Exporter::start(&cfg, Arc::new(StateStore::in_memory()), None, None).unwrap()
}

/// When each target's first poll was published, from `t0`, in config order.
async fn first_polls(rt: &Exporter, t0: Instant) -> Vec<Duration> {
    let mut done: Vec<Option<Duration>> = vec![None; TARGETS];
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, t) in rt.targets.load().iter().enumerate() {
            if done[i].is_none() && t.snapshot.load().first_poll_done {
                done[i] = Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    done.into_iter()
        .map(|d| d.expect("every target polled within 10 s"))
        .collect()
}

#[tokio::test]
async fn first_polls_of_a_fleet_are_spread_not_a_herd() {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let t0 = Instant::now();
    let rt = start(fleet(&mock.url(), &[Duration::from_secs(2)]));
    let done = first_polls(&rt, t0).await;
    rt.shutdown();
    // No target polls before its place in the schedule (a herd would have them all at once)…
    for (i, at) in done.iter().enumerate() {
        let offset = first_poll_offset(i, TARGETS, INTERVAL);
        assert!(
            *at >= offset,
            "target {i} polled at {at:?}, before {offset:?}"
        );
    }
    // …and the schedule spans the fleet: 20 targets, 20 ms apart.
    let span = first_poll_offset(TARGETS - 1, TARGETS, INTERVAL);
    assert!(span >= Duration::from_millis(380), "{span:?}");
    let within_100ms = done
        .iter()
        .filter(|d| **d < Duration::from_millis(100))
        .count();
    assert!(
        within_100ms <= 5,
        "{within_100ms} of {TARGETS} first polls in 100 ms: {done:?}"
    );
    // Both endpoints of every target were read.
    assert!(mock.seen().len() >= 2 * TARGETS, "{}", mock.seen().len());
}

#[tokio::test]
async fn targets_with_the_same_settings_share_one_client() {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let rt = start(fleet(&mock.url(), &[Duration::from_secs(2)]));
    assert_eq!(rt.http_clients(), 1);
    rt.shutdown();
    // Another timeout is another client; credentials never are (they go with each request).
    let rt = start(fleet(
        &mock.url(),
        &[Duration::from_secs(2), Duration::from_secs(3)],
    ));
    assert_eq!(rt.http_clients(), 2);
    rt.shutdown();
}

#[tokio::test]
async fn a_tight_descriptor_budget_queues_polls_instead_of_failing_them() {
    use bitbucket_zdu_exporter::sys::fds::FdBudget;
    let mock = Mock::start("127.0.0.1").await.unwrap();
    // 70 descriptors: one poll at a time (the 20 targets share one origin, which may keep
    // its connection alive; 20 origins could not).
    let budget = FdBudget::plan(Some(70), 512);
    assert_eq!(budget.concurrent_polls(), 1);
    assert!(budget.keep_alive(1) && !budget.keep_alive(TARGETS));
    let cfg = Config::builder(fleet(&mock.url(), &[Duration::from_secs(2)]))
        .build()
        .unwrap();
    let rt =
        Exporter::start_with(&cfg, Arc::new(StateStore::in_memory()), None, None, budget).unwrap();
    first_polls(&rt, Instant::now()).await;
    for t in rt.targets.load().iter() {
        let snap = t.snapshot.load();
        assert!(
            snap.cluster.is_some(),
            "{} has no cluster reading",
            snap.target
        );
    }
    rt.shutdown();
}

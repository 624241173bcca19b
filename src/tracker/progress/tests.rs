use super::*;

fn node(name: &str, ip: &str, state: NodeState, version: Option<&str>) -> Node {
    Node {
        id: Some(format!("{name}@{ip}")),
        name: Some(name.into()),
        ip_address: Some(ip.into()),
        state: Some(state),
        version: version.map(Into::into),
        active_user_count: Some(3),
        tasks_total: Some(1),
        ..Node::default()
    }
}

fn cluster(mode: bool, state: ClusterState, nodes: Vec<Node>) -> Cluster {
    Cluster {
        upgrade_mode_enabled: Some(mode),
        state: Some(state),
        original_version: mode.then(|| "1.0".to_string()),
        nodes,
    }
}

use ClusterState::*;
use NodeState::*;

/// A whole rolling upgrade of two nodes, one poll per step, 10 s apart.
fn rolling(new_ips: bool) -> Vec<Cluster> {
    let a = |s, v| node("a", "1", s, v);
    let b = |s, v| node("b", "2", s, v);
    let a2 = |s, v| node("a", if new_ips { "3" } else { "1" }, s, v);
    let ghost_a = || node("a", "1", Offline, None);
    let old = Some("1.0");
    let new = Some("2.0");
    let with_ghost = |mut v: Vec<Node>| {
        if new_ips {
            v.insert(0, ghost_a());
        }
        v
    };
    vec![
        cluster(false, Stable, vec![a(Active, old), b(Active, old)]),
        cluster(true, ReadyToUpgrade, vec![a(Active, old), b(Active, old)]),
        cluster(true, ReadyToUpgrade, vec![a(Draining, old), b(Active, old)]),
        cluster(
            true,
            ReadyToUpgrade,
            vec![a(Terminating, old), b(Active, old)],
        ),
        cluster(true, ReadyToUpgrade, vec![a(Offline, None), b(Active, old)]),
        cluster(
            true,
            Mixed,
            with_ghost(vec![a2(Starting, new), b(Active, old)]),
        ),
        cluster(
            true,
            Mixed,
            with_ghost(vec![a2(Active, new), b(Active, old)]),
        ),
        cluster(
            true,
            Mixed,
            with_ghost(vec![a2(Active, new), b(Draining, old)]),
        ),
        cluster(
            true,
            Mixed,
            with_ghost(vec![a2(Active, new), b(Offline, None)]),
        ),
        cluster(
            true,
            ReadyToRunUpgradeTasks,
            with_ghost(vec![a2(Active, new), b(Active, new)]),
        ),
        cluster(
            true,
            RunningUpgradeTasks,
            with_ghost(vec![a2(Active, new), b(Active, new)]),
        ),
        cluster(false, Stable, vec![a2(Active, new), b(Active, new)]),
    ]
}

fn play(p: &mut Progress, steps: &[Cluster], t0: f64) {
    for (i, c) in steps.iter().enumerate() {
        p.observe(c, t0 + 10.0 * i as f64);
    }
}

#[test]
fn a_rolling_upgrade_is_tracked_node_by_node_and_recorded() {
    for new_ips in [false, true] {
        let steps = rolling(new_ips);
        let mut p = Progress::default();
        play(&mut p, &steps[..6], 0.0);
        let u = p.current.as_ref().expect("in flight");
        assert_eq!(u.started, 10.0);
        assert_eq!(
            u.nodes_total(),
            2,
            "ghosts are not nodes (new_ips={new_ips})"
        );
        assert_eq!(
            u.nodes_done(),
            1,
            "STARTING on the new version counts as done"
        );
        let a = &u.nodes[0];
        assert_eq!(
            (a.drain_at, a.terminate_at, a.offline_at, a.start_at),
            (Some(20.0), Some(30.0), Some(40.0), Some(50.0))
        );
        // one of two done after 40 s → ETA start + 2 × 40
        assert_eq!(u.estimated_completion(), Some(90.0));
        play(&mut p, &steps[6..], 60.0);
        assert!(p.current.is_none());
        assert_eq!(p.results.completed, 1);
        assert_eq!(p.results.cancelled, 0);
        let h = p.last().unwrap();
        assert_eq!(h.result, UpgradeResult::Completed);
        assert_eq!((h.started, h.ended), (10.0, 110.0));
        assert_eq!(h.from_version.as_deref(), Some("1.0"));
        assert_eq!(h.to_version.as_deref(), Some("2.0"));
        // a: drain 20 → ACTIVE 60; b: drain 70 → ACTIVE 90
        assert_eq!(h.nodes[0].duration_seconds, Some(40.0));
        assert_eq!(h.nodes[1].duration_seconds, Some(20.0));
        assert_eq!(p.node_durations.count, 2);
        assert_eq!(p.node_durations.sum, 60.0);
        // b (20 s) in the 30 s bucket, a (40 s) in the 60 s one
        assert_eq!(&p.node_durations.buckets[..2], &[1, 1]);
    }
}

#[test]
fn nodes_done_before_the_upgrade_was_first_seen_give_no_rate() {
    // first seen mid-upgrade: a already on the new version
    let steps = rolling(false);
    let mut p = Progress::default();
    p.observe(&steps[7], 100.0);
    let u = p.current.as_ref().unwrap();
    assert_eq!(u.nodes_done(), 1);
    assert_eq!(u.estimated_completion(), None, "no rate yet");
    assert_eq!(p.node_durations.count, 0, "a's upgrade was not seen");
    p.observe(&steps[9], 130.0);
    let u = p.current.as_ref().unwrap();
    assert_eq!(u.nodes_done(), 2);
    assert_eq!(u.estimated_completion(), Some(130.0));
}

#[test]
fn no_eta_before_a_node_is_done() {
    let mut p = Progress::default();
    play(&mut p, &rolling(false)[..5], 0.0);
    assert_eq!(p.current.as_ref().unwrap().nodes_done(), 0);
    assert_eq!(p.current.as_ref().unwrap().estimated_completion(), None);
}

#[test]
fn cancel_and_failed_finalization_are_results() {
    let old = Some("1.0");
    let mut p = Progress::default();
    p.observe(
        &cluster(true, ReadyToUpgrade, vec![node("a", "1", Active, old)]),
        0.0,
    );
    p.observe(
        &cluster(false, Stable, vec![node("a", "1", Active, old)]),
        5.0,
    );
    assert_eq!(p.last().unwrap().result, UpgradeResult::Cancelled);
    assert_eq!(p.last().unwrap().to_version, None);
    let steps = rolling(false);
    play(&mut p, &steps[1..11], 100.0);
    let mut failed = cluster(
        false,
        UpgradeTasksFailed,
        vec![
            node("a", "1", Active, Some("2.0")),
            node("b", "2", Active, Some("2.0")),
        ],
    );
    failed.original_version = None;
    p.observe(&failed, 300.0);
    assert_eq!(p.last().unwrap().result, UpgradeResult::FailedFinalization);
    assert_eq!(p.last().unwrap().to_version.as_deref(), Some("2.0"));
    assert_eq!(
        (
            p.results.completed,
            p.results.cancelled,
            p.results.failed_finalization
        ),
        (0, 1, 1)
    );
    // a retry that succeeds later is not another upgrade
    p.observe(&cluster(false, Stable, failed.nodes.clone()), 400.0);
    assert_eq!(p.history.len(), 2);
}

#[test]
fn a_restart_mid_upgrade_neither_loses_nor_double_counts() {
    let steps = rolling(true);
    let mut p = Progress::default();
    play(&mut p, &steps[..8], 0.0);
    assert_eq!(p.node_durations.count, 1);
    // the state file round trip, then the same answer again and the rest
    let json = serde_json::to_string(&p).unwrap();
    let mut back: Progress = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    assert!(!back.observe(&steps[7], 75.0), "same answer: nothing new");
    // users and tasks moving is not worth a state file write
    let mut busier = steps[7].clone();
    for n in &mut busier.nodes {
        n.active_user_count = Some(42);
        n.tasks_total = Some(7);
    }
    assert!(!back.observe(&busier, 76.0), "counts are not tracked here");
    assert_eq!(back.node_durations.count, 1);
    play(&mut back, &steps[8..], 80.0);
    assert_eq!(back.node_durations.count, 2);
    assert_eq!(back.results.completed, 1);
    assert_eq!(back.history[0].started, 10.0);
    // an old state without progress fields loads
    let old: Progress = serde_json::from_str("{}").unwrap();
    assert_eq!(old, Progress::default());
}

#[test]
fn history_and_transitions_are_bounded() {
    let mut p = Progress::default();
    let steps = rolling(false);
    for i in 0..(HISTORY_LIMIT + 3) {
        play(&mut p, &steps, 1000.0 * i as f64);
    }
    assert_eq!(p.history.len(), HISTORY_LIMIT);
    assert_eq!(p.results.completed, (HISTORY_LIMIT + 3) as u64);
    assert_eq!(p.recent_transitions.len(), RECENT_TRANSITIONS_LIMIT);
    assert_eq!(p.history[0].started, 3010.0);
}

#[test]
fn next_to_stop_is_the_least_busy_live_node_on_the_old_version() {
    let old = Some("1.0");
    let mut c = cluster(
        true,
        Mixed,
        vec![
            node("a", "1", Offline, None),
            node("a", "3", Active, Some("2.0")),
            node("b", "2", Active, old),
            node("c", "4", Active, old),
        ],
    );
    c.nodes[2].active_user_count = Some(5);
    c.nodes[3].active_user_count = Some(0);
    c.nodes[3].tasks_total = Some(0);
    assert_eq!(next_to_stop(&c), Some((3, true)));
    c.nodes[3].tasks_total = Some(9);
    assert_eq!(next_to_stop(&c), Some((2, false)));
    c.original_version = None;
    assert_eq!(next_to_stop(&c), None);
}

#[test]
fn histogram_buckets_are_fixed_and_counted_once() {
    let mut h = DurationHistogram::default();
    h.observe(30.0);
    h.observe(31.0);
    h.observe(99999.0);
    let pairs = h.pairs();
    assert_eq!(pairs.len(), NODE_DURATION_BUCKETS.len() + 1);
    assert_eq!(pairs[0], (30.0, 1));
    assert_eq!(pairs[1], (60.0, 1));
    assert_eq!(pairs.last().unwrap(), &(f64::INFINITY, 1));
    assert_eq!(h.count, 3);
}

/// Issue 17: Jira keeps stale OFFLINE entries under their own names for up to two days; they
/// counted as nodes, so the nodes done never reached the total and the ETA never finished.
#[test]
fn a_stale_offline_entry_takes_no_part_in_the_upgrade() {
    let stale = || node("stale", "9", Offline, Some("0.9"));
    let steps: Vec<Cluster> = rolling(false)
        .into_iter()
        .map(|mut c| {
            c.nodes.push(stale());
            c
        })
        .collect();
    let mut p = Progress::default();
    play(&mut p, &steps[..10], 0.0);
    let u = p.current.as_ref().expect("in flight");
    assert_eq!(u.nodes.len(), 3, "the stale entry is still tracked");
    assert!(!u.nodes[2].took_part());
    assert_eq!((u.nodes_done(), u.nodes_total()), (2, 2));
    // a at 50 s and b at 90 s, both done: the ETA is the last one done, not in the future.
    assert_eq!(u.estimated_completion(), Some(90.0));
    assert_eq!(
        steps[9].figures().distinct_versions,
        1,
        "nor in version skew"
    );
    play(&mut p, &steps[10..], 100.0);
    let last = p.last().expect("recorded");
    assert_eq!(last.result, UpgradeResult::Completed);
    let names: Vec<&str> = last.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

/// A stale OFFLINE entry listed before a renamed node never takes the renamed node's new name.
#[test]
fn a_renamed_node_is_paired_before_a_stale_entry() {
    let old = Some("1.0");
    let new = Some("2.0");
    let stale = || node("stale", "9", Offline, None);
    let mut p = Progress::default();
    let steps = [
        cluster(
            true,
            ReadyToUpgrade,
            vec![
                stale(),
                node("a", "1", Active, old),
                node("b", "2", Active, old),
            ],
        ),
        cluster(
            true,
            Mixed,
            vec![
                stale(),
                node("a2", "3", Active, new),
                node("b", "2", Active, old),
            ],
        ),
    ];
    play(&mut p, &steps, 0.0);
    let u = p.current.as_ref().expect("in flight");
    let names: Vec<&str> = u.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["stale", "a2", "b"]);
    assert_eq!((u.nodes_done(), u.nodes_total()), (1, 2));
}

//! What an exporter remembers across a restart (state entered times, the last node change)
//! and how state-file errors are counted.

use super::*;

#[tokio::test]
async fn state_entered_times_survive_an_exporter_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(|c| {
        c.start().unwrap();
        upgrade(c, 0);
    });
    let first = {
        let (store, _) = StateStore::open(&path);
        let (shared, mut p) = poller_with_store(target("t", &sim.url()), Arc::new(store));
        p.poll_once().await;
        let text = render_target(&shared, Format::Text004);
        value(
            &text,
            "bitbucket_zdu_cluster_state_entered_timestamp_seconds",
            &[],
        )
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // "Restart": a new store from the same file, a new poller.
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none());
    let (shared, mut p) = poller_with_store(target("t", &sim.url()), Arc::new(store));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    let second = value(
        &text,
        "bitbucket_zdu_cluster_state_entered_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert_eq!(first, second, "MIXED-since must not reset on restart");
    // Without the file it would have reset.
    let (shared, mut p) = poller(target("t", &sim.url()));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    let fresh = value(
        &text,
        "bitbucket_zdu_cluster_state_entered_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(fresh > first + 1.0);
}

#[tokio::test]
async fn last_node_change_survives_a_restart_and_moves_on_progress() {
    const M: &str = "bitbucket_zdu_node_state_last_change_timestamp_seconds";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let sim = Sim::stable(3).await;
    sim.sim.with_cluster(|c| {
        c.start().unwrap();
        upgrade(c, 0);
    });
    let first = {
        let (store, _) = StateStore::open(&path);
        let (shared, mut p) = poller_with_store(target("t", &sim.url()), Arc::new(store));
        p.poll_once().await;
        value(&render_target(&shared, Format::Text004), M, &[]).unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (store, _) = StateStore::open(&path);
    let (shared, mut p) = poller_with_store(target("t", &sim.url()), Arc::new(store));
    p.poll_once().await;
    let text = render_target(&shared, Format::Text004);
    assert_eq!(value(&text, M, &[]), Some(first), "no progress, no move");
    // a node changing state is progress
    sim.sim
        .with_cluster(|c| c.nodes[1].state = NodeState::Draining);
    p.poll_once().await;
    let moved = value(&render_target(&shared, Format::Text004), M, &[]).unwrap();
    assert!(moved > first + 1.0, "{moved} vs {first}");
}

#[tokio::test]
async fn state_file_errors_are_counted_in_the_exporters_metrics() {
    // Issue 10 finding 9: a state file that cannot be written is a counter, not a warning
    // per poll (the store logs it once per distinct error).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::create_dir(&path).unwrap(); // unreadable and unwritable as a file, even for root
    let (store, err) = StateStore::open(&path);
    assert!(err.is_some(), "reading a directory fails");
    let sim = Sim::stable(2).await;
    let cfg = bitbucket_zdu_exporter::config::Config::builder(vec![target("t", &sim.url())])
        .max_requests(4)
        .build()
        .unwrap();
    let rt =
        bitbucket_zdu_exporter::app::Exporter::start(&cfg, Arc::new(store), None, None).unwrap();
    wait_ready(&rt).await;
    let text = bitbucket_zdu_exporter::server::render(
        &bitbucket_zdu_exporter::server::metrics_registry(&rt),
        Format::Text004,
    );
    rt.shutdown();
    // One failed read at start, one failed write of the first poll's state.
    assert_eq!(
        value(&text, "bitbucket_zdu_exporter_state_file_errors_total", &[]),
        Some(2.0),
        "{text}"
    );
    let fine = StateStore::in_memory();
    assert_eq!(fine.errors_total(), 0);
}

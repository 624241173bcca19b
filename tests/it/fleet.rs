//! A central exporter for a fleet: targets that share settings share one HTTP client,
//! targets started together poll staggered, not all at once, and connections are kept alive
//! only while one per origin fits the descriptor budget (a reload switches it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::app::Exporter;
use bitbucket_zdu_exporter::config::{Config, TargetConfig};
use bitbucket_zdu_exporter::poller::first_poll_offset;
use bitbucket_zdu_exporter::snapshot::Endpoint;
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

/// An upstream on its own origin that serves each connection's requests one after another
/// (HTTP/1.1 keep-alive) and counts the requests, those that came on a connection that had
/// already carried one (a poll's second call on its first call's connection, or a
/// kept-alive connection used again), and those that came on a connection that had already
/// carried a request for the same path (a connection kept from one poll to the next).
struct KeepAliveUpstream {
    url: String,
    requests: Arc<AtomicUsize>,
    reused: Arc<AtomicUsize>,
    kept: Arc<AtomicUsize>,
}

impl KeepAliveUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = KeepAliveUpstream {
            url: format!("http://{}", listener.local_addr().unwrap()),
            requests: Arc::default(),
            reused: Arc::default(),
            kept: Arc::default(),
        };
        let counters = [up.requests.clone(), up.reused.clone(), up.kept.clone()];
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, counters.clone()));
            }
        });
        up
    }

    fn counts(&self) -> [usize; 3] {
        [&self.requests, &self.reused, &self.kept].map(|c| c.load(Ordering::SeqCst))
    }
}

/// Serves one connection; `counters`: requests, reused, kept ([`KeepAliveUpstream`]).
async fn serve(mut s: tokio::net::TcpStream, counters: [Arc<AtomicUsize>; 3]) {
    use crate::common::upstream::{CLUSTER_JSON, STATE_JSON};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let [requests, reused, kept] = counters;
    let (mut buf, mut chunk, mut paths) = (Vec::new(), [0u8; 4096], Vec::<String>::new());
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let body = if path.ends_with("/cluster") {
            CLUSTER_JSON
        } else {
            STATE_JSON
        };
        requests.fetch_add(1, Ordering::SeqCst);
        if !paths.is_empty() {
            reused.fetch_add(1, Ordering::SeqCst);
        }
        if paths.iter().any(|p| p == path) {
            kept.fetch_add(1, Ordering::SeqCst);
        }
        paths.push(path.to_string());
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Waits until every current target has finished `n` more `/cluster` polls.
async fn more_polls(rt: &Exporter, n: u64) {
    let polls = || -> Vec<u64> {
        rt.targets
            .load()
            .iter()
            .map(|t| t.snapshot.load().endpoints[Endpoint::Cluster].polls_total)
            .collect()
    };
    let start = polls();
    let deadline = Instant::now() + Duration::from_secs(10);
    while polls().iter().zip(&start).any(|(now, s)| *now < s + n) {
        assert!(Instant::now() < deadline, "targets stopped polling");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests, reused-connection requests and kept-connection requests over three polls of
/// every target, counted after one poll each on the current configuration (a stopped
/// poller's last requests may still land); every target up afterwards.
async fn three_polls(rt: &Exporter, ups: &[KeepAliveUpstream]) -> (usize, usize, usize) {
    let sum = || {
        ups.iter()
            .map(KeepAliveUpstream::counts)
            .fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]])
    };
    more_polls(rt, 1).await;
    let before = sum();
    more_polls(rt, 3).await;
    let after = sum();
    for t in rt.targets.load().iter() {
        let snap = t.snapshot.load();
        assert!(snap.cluster.is_some(), "{} is not up", snap.target);
        assert!(snap.endpoints[Endpoint::Cluster].last_error.is_none());
    }
    (
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2],
    )
}

#[tokio::test]
async fn a_reload_across_the_descriptor_budget_switches_keep_alive() {
    use bitbucket_zdu_exporter::config::ProcessEnv;
    use bitbucket_zdu_exporter::sys::fds::FdBudget;
    // 70 descriptors: two origins may keep a connection alive, three may not.
    let budget = FdBudget::plan(Some(70), 512);
    assert!(budget.keep_alive(2) && !budget.keep_alive(3));
    let mut ups = Vec::new();
    for _ in 0..3 {
        ups.push(KeepAliveUpstream::start().await);
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("targets.yml");
    let write = |n: usize| {
        let targets: String = ups[..n]
            .iter()
            .enumerate()
            .map(|(i, u)| {
                format!(
                    "  - name: t{i}\n    url: {}\n    poll_interval: 100ms\n",
                    u.url
                )
            })
            .collect();
        std::fs::write(&cfg, format!("targets:\n{targets}")).unwrap();
    };
    write(1);
    let (args, config) = crate::common::from_config_file(&cfg);
    let store = Arc::new(StateStore::in_memory());
    let rt = Exporter::start_with(
        &config,
        store,
        Some(args),
        Some(Box::new(ProcessEnv)),
        budget,
    )
    .unwrap();
    // One origin: its connection is kept alive and used again by the next polls.
    let (requests, _, kept) = three_polls(&rt, &ups).await;
    assert!(
        requests >= 6 && kept >= 2,
        "{requests} requests, {kept} on a connection kept from an earlier poll"
    );
    // Three origins do not fit: each poll opens one connection for its two calls and
    // closes it after, and polls go on.
    write(3);
    rt.reload().await.unwrap();
    assert_eq!(rt.targets.load().len(), 3);
    let (requests, reused, kept) = three_polls(&rt, &ups).await;
    assert!(requests >= 18, "{requests} requests");
    assert_eq!(kept, 0, "a connection was kept alive beyond the budget");
    assert!(reused >= 1, "no poll made its two calls on one connection");
    // Back to one: kept alive again.
    write(1);
    rt.reload().await.unwrap();
    let (requests, _, kept) = three_polls(&rt, &ups).await;
    assert!(
        requests >= 6 && kept >= 2,
        "{requests} requests, {kept} on a connection kept from an earlier poll"
    );
    rt.shutdown();
}

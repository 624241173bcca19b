//! Confluence and Jira targets against fake upstreams on loopback that speak each product's
//! API: decoding through the poller, the reading every reader renders, and failure reasons.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bitbucket_zdu_exporter::api;
use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::metrics::catalogue;
use bitbucket_zdu_exporter::model::Product;

use crate::common::{poller, value};

/// What the fake upstream answers on each path: (status, body).
#[derive(Default)]
struct Answers {
    jira_state: (u16, String),
    jira_nodes: (u16, String),
    zdu_cluster: (u16, String),
    zdu_state: (u16, String),
    /// Requests served per path, in order of arrival.
    hits: Vec<&'static str>,
}

impl Answers {
    fn hits(&self, path: &str) -> usize {
        self.hits.iter().filter(|h| **h == path).count()
    }
}

type Shared = Arc<Mutex<Answers>>;

fn reply(a: &(u16, String)) -> axum::response::Response {
    (
        StatusCode::from_u16(a.0).unwrap(),
        [("content-type", "application/json")],
        a.1.clone(),
    )
        .into_response()
}

async fn upstream(answers: Shared) -> String {
    let app = Router::new()
        .route(
            "/ctx/rest/api/2/cluster/zdu/state",
            get(|State(s): State<Shared>| async move {
                let mut a = s.lock().unwrap();
                a.hits.push("jira_state");
                reply(&a.jira_state)
            }),
        )
        .route(
            "/ctx/rest/api/2/cluster/nodes",
            get(|State(s): State<Shared>| async move {
                let mut a = s.lock().unwrap();
                a.hits.push("jira_nodes");
                reply(&a.jira_nodes)
            }),
        )
        .route(
            "/ctx/rest/zdu/cluster",
            get(|State(s): State<Shared>| async move {
                let mut a = s.lock().unwrap();
                a.hits.push("zdu_cluster");
                reply(&a.zdu_cluster)
            }),
        )
        .route(
            "/ctx/rest/zdu/state",
            get(|State(s): State<Shared>| async move {
                let mut a = s.lock().unwrap();
                a.hits.push("zdu_state");
                reply(&a.zdu_state)
            }),
        )
        .with_state(answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/ctx")
}

fn target(name: &str, url: &str, product: Product) -> TargetConfig {
    TargetConfig::builder(name, url)
        .timeout(std::time::Duration::from_secs(2))
        .poll_interval(std::time::Duration::from_secs(5))
        .product(product)
        .build()
        .unwrap()
}

fn jira_state(state: &str, version: &str) -> (u16, String) {
    (
        200,
        format!(r#"{{"state":"{state}","build":{{"buildNumber":1,"version":"{version}"}}}}"#),
    )
}

fn jira_node(id: &str, state: &str, alive: bool, version: &str) -> String {
    format!(
        r#"{{"nodeId":"{id}","state":"{state}","alive":{alive},"ip":"10.0.0.1","cacheListenerPort":40001,"nodeBuildNumber":1,"nodeVersion":"{version}","lastStateChangeTimestamp":1700000000000}}"#
    )
}

/// A Jira poll reads `zdu/state` once: that answer makes both the cluster reading and the
/// state reading, whose statistics still count one poll each; a failed state call fails both.
#[tokio::test]
async fn a_jira_poll_reads_the_cluster_state_once() {
    use bitbucket_zdu_exporter::metrics::Format;

    let answers: Shared = Arc::default();
    let url = upstream(answers.clone()).await;
    let (shared, mut p) = poller(target("jira", &url, Product::Jira));
    {
        let mut a = answers.lock().unwrap();
        a.jira_state = jira_state("MIXED", "9.4.30");
        a.jira_nodes = (
            200,
            format!("[{}]", jira_node("node1", "ACTIVE", true, "9.12.24")),
        );
    }
    for polls in 1..=3 {
        p.poll_once().await;
        let a = answers.lock().unwrap();
        assert_eq!(a.hits("jira_state"), polls, "{:?}", a.hits);
        assert_eq!(a.hits("jira_nodes"), polls, "{:?}", a.hits);
        assert_eq!(
            a.hits.len(),
            2 * polls,
            "nothing else is read: {:?}",
            a.hits
        );
    }
    let text = crate::common::render_target(&shared, Format::Text004);
    for endpoint in ["cluster", "state"] {
        let polls = value(&text, "jira_zdu_polls_total", &[("endpoint", endpoint)]);
        assert_eq!(polls, Some(3.0), "{endpoint}: {text}");
    }
    assert!(api::view(&shared).up);
    answers.lock().unwrap().jira_state = (500, "{}".into());
    p.poll_once().await;
    let text = crate::common::render_target(&shared, Format::Text004);
    for endpoint in ["cluster", "state"] {
        let labels = [("endpoint", endpoint), ("reason", "server_error")];
        let errors = value(&text, "jira_zdu_poll_errors_total", &labels);
        assert_eq!(errors, Some(1.0), "{endpoint}: {text}");
    }
    assert_eq!(answers.lock().unwrap().hits("jira_state"), 4);
}

#[tokio::test]
async fn a_jira_upgrade_reads_stable_mixed_stable_with_heartbeat_and_stale_offline() {
    let answers: Shared = Arc::default();
    let url = upstream(answers.clone()).await;
    let (shared, mut p) = poller(target("jira", &url, Product::Jira));
    let offline = jira_node("gone", "OFFLINE", false, "9.2.0");
    let steps = [
        ("STABLE", "9.4.30", ["9.4.30", "9.4.30"], false),
        ("MIXED", "9.4.30", ["9.12.24", "9.4.30"], true),
        ("STABLE", "9.12.24", ["9.12.24", "9.12.24"], false),
    ];
    for (state, cluster_version, nodes, in_upgrade) in steps {
        {
            let mut a = answers.lock().unwrap();
            a.jira_state = jira_state(state, cluster_version);
            a.jira_nodes = (
                200,
                format!(
                    "[{},{},{offline}]",
                    jira_node("node1", "ACTIVE", true, nodes[0]),
                    jira_node("node2", "ACTIVE", !in_upgrade, nodes[1])
                ),
            );
        }
        p.poll_once().await;
        let v = api::view(&shared);
        assert!(v.up, "{v:?}");
        assert_eq!(v.product, Product::Jira);
        assert_eq!(v.cluster_state.as_deref(), Some(state));
        assert_eq!(v.upgrade_mode_enabled, Some(in_upgrade));
        let original = in_upgrade.then(|| cluster_version.to_string());
        assert_eq!(v.original_version, original);
        let mut want: Vec<&str> = nodes.to_vec();
        want.dedup();
        assert_eq!(
            v.versions.len(),
            want.len(),
            "the OFFLINE 9.2.0 entry is not skew"
        );
        assert_eq!(v.nodes.len(), 3);
        assert_eq!(
            v.nodes[1].alive,
            Some(!in_upgrade),
            "ACTIVE without heartbeat"
        );
        assert_eq!(v.nodes[0].state_since, Some(1_700_000_000.0));
    }
    assert_eq!(api::view(&shared).results.completed, 1);
}

#[tokio::test]
async fn confluence_reads_finalization_errors_and_null_node_states() {
    let answers: Shared = Arc::default();
    let url = upstream(answers.clone()).await;
    answers.lock().unwrap().zdu_cluster = (
        200,
        r#"{"upgradeModeEnabled":true,"state":"UPGRADE_TASKS_FAILED","originalVersion":"9.2.13","hasFinalizationTasks":true,
            "nodes":[{"id":"a","name":"n1","ipAddress":"10.0.0.1","state":"UPGRADE_TASKS_FAILED","version":"9.2.21",
                      "finalization":{"lastRequested":1700000000000,"errors":[{"exceptionMessage":"boom"}]}},
                     {"id":"b","name":"n2","ipAddress":"10.0.0.2","state":null,"version":"9.2.21"}]}"#
            .into(),
    );
    answers.lock().unwrap().zdu_state = (200, r#"{"state":"UPGRADE_TASKS_FAILED"}"#.into());
    let (shared, mut p) = poller(target("wiki", &url, Product::Confluence));
    p.poll_once().await;
    let v = api::view(&shared);
    assert!(v.up, "{v:?}");
    assert_eq!(v.product, Product::Confluence);
    assert_eq!(v.nodes[0].finalization_errors, Some(1));
    assert_eq!(v.nodes[1].state.as_deref(), Some("unknown"));
    assert_eq!(v.nodes[1].alive, None);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["product"], "confluence");
    let text =
        crate::common::render_target(&shared, bitbucket_zdu_exporter::metrics::Format::Text004);
    assert!(
        text.contains("confluence_zdu_has_finalization_tasks 1"),
        "{text}"
    );
    assert!(
        text.contains("confluence_zdu_node_finalization_errors{node_id=\"a\",node_name=\"n1\"} 1"),
        "{text}"
    );
    assert!(!text.contains("_node_alive"), "{text}");
}

#[tokio::test]
async fn failure_reasons_per_product_through_the_poller() {
    let answers: Shared = Arc::default();
    let url = upstream(answers.clone()).await;
    {
        let mut a = answers.lock().unwrap();
        a.jira_state = jira_state("STABLE", "9.4.30");
        a.jira_nodes = (
            405,
            r#"{"errorMessages":["You don't have Jira Data Center"],"errors":{}}"#.into(),
        );
        a.zdu_cluster = (
            403,
            r#"{"message":"Basic Authentication has been disabled on this instance."}"#.into(),
        );
        a.zdu_state = a.zdu_cluster.clone();
    }
    let (jira, mut pj) = poller(target("jira", &url, Product::Jira));
    pj.poll_once().await;
    assert_eq!(
        api::view(&jira).down_reason.as_deref(),
        Some("not_clustered")
    );
    let (wiki, mut pc) = poller(target("wiki", &url, Product::Confluence));
    pc.poll_once().await;
    let v = api::view(&wiki);
    assert_eq!(v.down_reason.as_deref(), Some("credentials"));
    assert!(v.last_error.unwrap().contains("personal access token"));
}

#[tokio::test]
async fn each_product_gets_its_own_metric_prefix_and_bitbucket_keeps_its_own() {
    use bitbucket_zdu_exporter::metrics::Format;
    let answers: Shared = Arc::default();
    let url = upstream(answers.clone()).await;
    {
        let mut a = answers.lock().unwrap();
        a.jira_state = jira_state("MIXED", "9.4.30");
        a.jira_nodes = (
            200,
            format!("[{}]", jira_node("node1", "ACTIVE", true, "9.12.24")),
        );
        a.zdu_cluster = (
            200,
            r#"{"upgradeModeEnabled":false,"state":"STABLE","nodes":[{"id":"a","name":"n1","state":"ACTIVE","version":"1"}]}"#
                .into(),
        );
        a.zdu_state = (200, r#"{"state":"STABLE"}"#.into());
    }
    let mut texts = Vec::new();
    for product in Product::ALL {
        let (shared, mut p) = poller(target(product.as_str(), &url, product));
        p.poll_once().await;
        texts.push(crate::common::render_target(&shared, Format::Text004));
    }
    let [bb, wiki, jira] = &texts[..] else {
        unreachable!()
    };
    let families = |t: &str, prefix: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .map(|n| n.replacen(prefix, "P", 1))
            .collect()
    };
    assert!(bb.contains("bitbucket_zdu_up 1"), "{bb}");
    assert!(wiki.contains("confluence_zdu_up 1"), "{wiki}");
    assert!(jira.contains("jira_zdu_up 1"), "{jira}");
    assert!(
        jira.contains("jira_zdu_cluster_state{state=\"MIXED\"} 1"),
        "{jira}"
    );
    assert!(jira.contains("jira_zdu_upgrade_mode_enabled 1"), "{jira}");
    for t in [wiki, jira] {
        assert!(!t.contains("bitbucket_zdu"), "{t}");
    }
    assert!(
        jira.contains("jira_zdu_node_alive{node_id=\"node1\",node_name=\"node1\"} 1"),
        "{jira}"
    );
    assert!(
        !bb.contains("_node_alive") && !bb.contains("_finalization_"),
        "{bb}"
    );
    // The same families, suffixes and types under each prefix.
    assert_eq!(
        families(bb, "bitbucket_zdu"),
        families(wiki, "confluence_zdu")
    );
    // Jira is MIXED: its upgrade families come on top of the STABLE ones, except those the
    // catalogue's product table does not give Jira (no node answers its state call, no tasks
    // or users per node).
    let jira_families = families(jira, "jira_zdu");
    let lacks = |f: &str| {
        catalogue::ALL.iter().any(|c| {
            c.name.replacen("bitbucket_zdu", "P", 1) == f && !c.products.contains(&Product::Jira)
        })
    };
    for f in families(bb, "bitbucket_zdu") {
        assert_eq!(jira_families.contains(&f), !lacks(&f), "{f} in {jira}");
    }
    assert!(lacks("P_responder_state") && lacks("P_node_active_tasks"));
    for f in ["P_original_version_info", "P_upgrade_nodes"] {
        assert!(
            jira_families.iter().any(|j| j == f),
            "{f} missing from {jira}"
        );
    }
}

/// One exporter, one Bitbucket, one Confluence and one Jira target, each against the
/// simulator speaking its product: every target's families appear under its prefix, and each
/// cluster walks a rolling upgrade from STABLE back to STABLE.
#[tokio::test]
async fn one_exporter_follows_a_rolling_upgrade_of_each_product() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{Duration, Instant};

    use bitbucket_zdu_exporter::metrics::Format;
    use bitbucket_zdu_exporter::simulator::{Scenario, SimulateArgs};

    use crate::common::exposition::samples;
    use crate::common::{render_target, started, Sim};

    let mut sims = Vec::new();
    let mut targets = Vec::new();
    for product in Product::ALL {
        let sim = Sim::start(SimulateArgs {
            scenario: Scenario::RollingUpgrade,
            speed: 40.0,
            product,
            context_path: "/ctx".into(),
            ..SimulateArgs::default()
        })
        .await;
        sim.sim.spawn_driver();
        targets.push(
            TargetConfig::builder(product.as_str(), format!("http://{}/ctx", sim.addr))
                .poll_interval(Duration::from_millis(100))
                .timeout(Duration::from_millis(100))
                .product(product)
                .build()
                .unwrap(),
        );
        sims.push(sim);
    }
    let rt = started(targets).await;
    let shared = rt.targets.load();
    let mut seen: BTreeMap<Product, BTreeSet<String>> = BTreeMap::new();
    let mut node_states: BTreeMap<Product, BTreeSet<String>> = BTreeMap::new();
    let mut back_to_stable: BTreeSet<Product> = BTreeSet::new();
    let began = Instant::now();
    while back_to_stable.len() < 3 && began.elapsed() < Duration::from_secs(60) {
        for (t, product) in shared.iter().zip(Product::ALL) {
            let text = render_target(t, Format::Text004);
            let prefix = product.metric_prefix();
            for s in samples(&text) {
                assert!(
                    s.name.starts_with(prefix),
                    "{} under {product}'s target",
                    s.name
                );
                let state = s.labels.iter().find(|(k, _)| k == "state").map(|(_, v)| v);
                match (s.name.strip_prefix(prefix), state) {
                    (Some("_cluster_state"), Some(st)) if s.value == 1.0 => {
                        let states = seen.entry(product).or_default();
                        states.insert(st.clone());
                        if st == "STABLE" && states.contains("RUNNING_UPGRADE_TASKS") {
                            back_to_stable.insert(product);
                        }
                    }
                    (Some("_node_state"), Some(st)) if s.value == 1.0 => {
                        node_states.entry(product).or_default().insert(st.clone());
                    }
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rt.shutdown();
    for product in Product::ALL {
        let states = &seen[&product];
        for st in [
            "STABLE",
            "READY_TO_UPGRADE",
            "MIXED",
            "RUNNING_UPGRADE_TASKS",
        ] {
            assert!(
                states.contains(st),
                "{product} never showed {st}: {states:?}"
            );
        }
        assert!(back_to_stable.contains(&product), "{product}: {states:?}");
    }
    assert!(node_states[&Product::Bitbucket].contains("DRAINING"));
    assert!(
        !node_states[&Product::Confluence].contains("DRAINING"),
        "Confluence never drains"
    );
    let jira = &node_states[&Product::Jira];
    assert!(
        jira.contains("PASSIVATING") && jira.contains("OFFLINE"),
        "{jira:?}"
    );
}

/// Issue 17: the simulator's Jira keeps a stale OFFLINE entry (`jira-stale`, on another
/// version) through a whole rolling upgrade. It takes no part: the upgrade counts three
/// nodes, reaches three done before STABLE, and the stale entry never adds a version.
#[tokio::test]
async fn a_jira_upgrade_completes_its_progress_with_a_stale_offline_entry() {
    use std::time::{Duration, Instant};

    use bitbucket_zdu_exporter::metrics::Format;
    use bitbucket_zdu_exporter::simulator::{Scenario, SimulateArgs};

    use crate::common::{render_target, Sim};

    let sim = Sim::start(SimulateArgs {
        scenario: Scenario::RollingUpgrade,
        speed: 40.0,
        product: Product::Jira,
        ..SimulateArgs::default()
    })
    .await;
    let driver = sim.sim.spawn_driver();
    let (shared, mut p) = poller(target("jira", &sim.url(), Product::Jira));
    let (mut totals, mut dones, mut versions) = (Vec::new(), Vec::new(), Vec::new());
    let mut tasks_seen = false;
    let mut last = String::new();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(40) {
        p.poll_once().await;
        last = render_target(&shared, Format::Text004);
        let state = |s| value(&last, "jira_zdu_cluster_state", &[("state", s)]) == Some(1.0);
        tasks_seen |= state("RUNNING_UPGRADE_TASKS");
        if let Some(t) = value(&last, "jira_zdu_upgrade_nodes", &[]) {
            totals.push(t);
            dones.push(value(&last, "jira_zdu_upgrade_nodes_done", &[]).unwrap());
        }
        versions.extend(value(&last, "jira_zdu_distinct_versions", &[]));
        if tasks_seen && state("STABLE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.abort();
    assert!(tasks_seen, "the upgrade reached RUNNING_UPGRADE_TASKS");
    assert!(!totals.is_empty(), "an upgrade in flight was seen");
    assert!(totals.iter().all(|t| *t == 3.0), "{totals:?}");
    assert_eq!(
        dones.iter().copied().reduce(f64::max),
        Some(3.0),
        "{dones:?}"
    );
    assert!(versions.iter().all(|v| *v <= 2.0), "{versions:?}");
    assert_eq!(versions.last(), Some(&1.0), "one version once STABLE");
    assert_eq!(
        value(&last, "jira_zdu_upgrades_total", &[("result", "completed")]),
        Some(1.0)
    );
    assert_eq!(
        value(&last, "jira_zdu_node_upgrade_duration_seconds_count", &[]),
        Some(3.0)
    );
}

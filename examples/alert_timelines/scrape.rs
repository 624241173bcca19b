//! The exporter side and the Prometheus side of one timeline.
//!
//! [`Exporter`] is one exporter process: its tracker memory ([`Tracker`], kept across a
//! restart only with a state file) fed by the exporter's own pipeline
//! ([`ClusterObservation::observe`] → [`TargetSnapshot`] → the catalogue encoders through
//! [`cache::ScrapeCache::probe`]). [`Store`] is what Prometheus keeps of the scrapes: samples per series
//! with the target labels a kubernetes-pods / ServiceMonitor job adds, `up`, and staleness
//! markers where a scrape fails, a series disappears or a target goes away.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::client::FetchError;
use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::metrics::cache;
use bitbucket_zdu_exporter::metrics::exposition::Format;
use bitbucket_zdu_exporter::model::extras::{self, ClusterExtras};
use bitbucket_zdu_exporter::model::jira::{self, JiraNodes, JiraState};
use bitbucket_zdu_exporter::model::{Answer, Cluster, Limits, Product};
use bitbucket_zdu_exporter::simulator::product as sim_product;
use bitbucket_zdu_exporter::simulator::SimCluster;
use bitbucket_zdu_exporter::snapshot::{
    ClusterObservation, Endpoint, TargetShared, TargetSnapshot,
};
use bitbucket_zdu_exporter::tracker::Tracker;

/// One exporter process (a sidecar or the central exporter) of one product's target.
pub struct Exporter {
    config: TargetConfig,
    /// The tracker memory (what the state file would hold).
    pub tracked: Tracker,
    polls: u64,
}

/// The base URL of a product's target (its usual port).
fn base_url(product: Product) -> &'static str {
    match product {
        Product::Bitbucket => "http://bitbucket:7990",
        Product::Confluence => "http://confluence:8090",
        Product::Jira => "http://jira:8080",
    }
}

/// One poll's reading in `product`'s real answer shapes, decoded as the exporter's client
/// does: the simulator serves the product's JSON (Bitbucket's `/rest/zdu/cluster`,
/// Confluence's with finalization fields and null states, Jira's `zdu/state` and
/// `cluster/nodes`), the model decodes the bytes. `null_states`: Confluence nodes (by name)
/// whose per-node call timed out this minute (`state: null`).
fn read(
    product: Product,
    sim: &SimCluster,
    local: Option<usize>,
    null_states: &[String],
) -> (Cluster, ClusterExtras) {
    let base = base_url(product);
    let bytes = |v: &serde_json::Value| serde_json::to_vec(v).expect("JSON encodes");
    let limits = Limits::default();
    match product {
        Product::Bitbucket => {
            let body = bytes(&sim.cluster_json(local, base));
            let c = Cluster::from_json(&body, limits).expect("simulator JSON decodes");
            (c, ClusterExtras::default())
        }
        Product::Confluence => {
            let mut v = sim_product::confluence_cluster(sim, sim.cluster_json(local, base));
            for n in v["nodes"].as_array_mut().into_iter().flatten() {
                let name = n["name"].as_str().unwrap_or_default().to_string();
                if n["state"] == "ACTIVE" && null_states.contains(&name) {
                    n["state"] = serde_json::Value::Null;
                }
            }
            let body = bytes(&v);
            let c = Cluster::from_json(&body, limits).expect("Confluence JSON decodes");
            (c, extras::confluence(&body))
        }
        Product::Jira => {
            let state = JiraState::from_json(&bytes(&sim_product::jira_state(sim)), limits)
                .expect("Jira state decodes");
            let nodes = JiraNodes::from_json(&bytes(&sim_product::jira_nodes(sim)), limits)
                .expect("Jira nodes decode");
            jira::assemble(state, nodes)
        }
    }
}

impl Exporter {
    /// A freshly started exporter of a `product` target with `tracked` as its memory.
    pub fn new(product: Product, tracked: Tracker) -> Self {
        let config = TargetConfig::builder(product.as_str(), base_url(product))
            .product(product)
            .poll_interval(Duration::from_secs(30))
            .build()
            .expect("static target config");
        Exporter {
            config,
            tracked,
            polls: 0,
        }
    }

    /// Polls once at virtual unix time `now` (`cluster` None: the product does not answer;
    /// else the cluster and the local node of a sidecar) and returns the exposition text a
    /// scrape right after would read. `null_states` as in [`read`].
    pub fn poll_and_expose(
        &mut self,
        cluster: Option<(&SimCluster, Option<usize>)>,
        null_states: &[String],
        now: f64,
    ) -> String {
        self.polls += 1;
        let product = self.config.product();
        let mut snap = TargetSnapshot::empty(&self.config, &self.tracked);
        snap.first_poll_done = true;
        let stats = &mut snap.endpoints[Endpoint::Cluster];
        stats.polls_total = self.polls;
        match cluster {
            Some((sim, local)) => {
                let (c, x) = read(product, sim, local, null_states);
                let (view, _) = ClusterObservation::observe_with(c, x, &mut self.tracked, now);
                stats.last_success_timestamp = Some(now);
                snap.transitions = Arc::new(self.tracked.transitions.clone());
                snap.progress = Arc::new(self.tracked.progress.clone());
                snap.cluster = Some(Arc::new(view));
                snap.cluster_at = Some(Instant::now());
            }
            None => {
                stats.last_error = Some(FetchError::Connect("connection refused".into()));
            }
        }
        let shared = TargetShared::new(self.config.clone(), &self.tracked);
        shared.publish(snap);
        cache::ScrapeCache::of_target(shared.clone())
            .probe(&shared, Format::Text004, Instant::now())
            .to_text()
    }
}

/// One Prometheus sample cell.
#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Missing,
    Value(f64),
    Stale,
}

/// What Prometheus stored, one cell per scrape.
#[derive(Default)]
pub struct Store {
    series: BTreeMap<String, Vec<Cell>>,
    /// Per target (its label text): the series of its last successful scrape.
    last: BTreeMap<String, BTreeSet<String>>,
    wanted: BTreeSet<String>,
}

fn labels_text(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// A store keeping only the metric names in `wanted` (those the rules read) and `up`.
    pub fn new(wanted: BTreeSet<String>) -> Self {
        Store {
            wanted,
            ..Default::default()
        }
    }

    fn put(&mut self, key: &str, at: usize, cell: Cell) {
        let v = self.series.entry(key.to_string()).or_default();
        if v.len() <= at {
            v.resize(at + 1, Cell::Missing);
        }
        v[at] = cell;
    }

    /// Scrape `at` of the target with `labels`: `body` is the exposition, None when the
    /// scrape failed (`up` 0, every series of the last scrape marked stale).
    pub fn scrape(&mut self, at: usize, labels: &[(String, String)], body: Option<&str>) {
        let tl = labels_text(labels);
        let up = format!("up{{{tl}}}");
        let prev = self.last.remove(&tl).unwrap_or_default();
        let mut now = BTreeSet::new();
        if let Some(body) = body {
            for line in body.lines() {
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                let Some((series, value)) = line.rsplit_once(' ') else {
                    continue;
                };
                let (name, rest) = match series.find('{') {
                    Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
                    None => (series, ""),
                };
                if !self.wanted.contains(name) {
                    continue;
                }
                let Ok(v) = value.parse::<f64>() else {
                    continue;
                };
                let key = if rest.is_empty() {
                    format!("{name}{{{tl}}}")
                } else {
                    format!("{name}{{{tl}, {}}}", rest.replace("\",", "\", "))
                };
                self.put(&key, at, Cell::Value(v));
                now.insert(key);
            }
        }
        for gone in prev.difference(&now) {
            self.put(gone, at, Cell::Stale);
        }
        self.put(&up, at, Cell::Value(if body.is_some() { 1.0 } else { 0.0 }));
        self.last.insert(tl, now);
    }

    /// The target with `labels` is gone (pod deleted): staleness markers for all its series.
    pub fn gone(&mut self, at: usize, labels: &[(String, String)]) {
        let tl = labels_text(labels);
        for s in self.last.remove(&tl).unwrap_or_default() {
            self.put(&s, at, Cell::Stale);
        }
        self.put(&format!("up{{{tl}}}"), at, Cell::Stale);
    }

    /// The promtool `input_series` entries (series, values in expanding notation). A
    /// `<product>_zdu_node_state` series that is 0 at every scrape is left out (the rules
    /// read that one-hot family only through `== 1`): it is most of the series and most of
    /// promtool's time.
    pub fn input_series(&self) -> Vec<(String, String)> {
        self.series
            .iter()
            .filter(|(k, cells)| !is_node_state(k) || cells.contains(&Cell::Value(1.0)))
            .map(|(k, cells)| (k.clone(), notation(cells)))
            .collect()
    }
}

/// True for a series of a product's one-hot node-state family (`<product>_zdu_node_state`).
pub fn is_node_state(series: &str) -> bool {
    series
        .split('{')
        .next()
        .is_some_and(|name| name.ends_with("_zdu_node_state"))
}

fn cell_text(c: Cell) -> String {
    match c {
        Cell::Missing => "_".into(),
        Cell::Stale => "stale".into(),
        Cell::Value(v) => format!("{v}"),
    }
}

/// promtool series notation with runs compressed (`v` repeated n+1 times is `vxn`, n blanks
/// `_xn`).
fn notation(cells: &[Cell]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cells.len() {
        let mut j = i + 1;
        while j < cells.len() && cells[j] == cells[i] && cells[i] != Cell::Stale {
            j += 1;
        }
        let n = j - i;
        out.push(match (cells[i], n) {
            (c, 1) => cell_text(c),
            (Cell::Missing, n) => format!("_x{n}"),
            (c, n) => format!("{}x{}", cell_text(c), n - 1),
        });
        i = j;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use bitbucket_zdu_exporter::model::NodeState;
    use bitbucket_zdu_exporter::simulator::Finalization;

    use super::*;

    fn sim(product: Product) -> SimCluster {
        let mut c = SimCluster::for_product(product, 3, "9.4.30");
        c.start().unwrap();
        c.nodes[0].state = NodeState::Draining;
        c.nodes[1].state = NodeState::Terminating;
        c
    }

    #[test]
    fn each_product_is_read_in_its_own_shape() {
        let (c, x) = read(Product::Bitbucket, &sim(Product::Bitbucket), Some(2), &[]);
        assert_eq!(c.nodes[0].state, Some(NodeState::Draining));
        assert_eq!(x, ClusterExtras::default());

        let mut s = sim(Product::Confluence);
        let null = vec!["confluence-2".to_string()];
        let (c, x) = read(Product::Confluence, &s, None, &null);
        assert_eq!(c.nodes[0].state, Some(NodeState::Active), "no DRAINING");
        assert_eq!(c.nodes[1].state, None, "stopping: null");
        assert_eq!(c.nodes[2].state, None, "its call timed out");
        assert!(x.nodes[2].state_null);
        s.finish_finalization(false);
        let (c, x) = read(Product::Confluence, &s, None, &[]);
        assert_eq!(
            c.nodes[2].state.as_ref().unwrap().as_str(),
            "UPGRADE_TASKS_FAILED"
        );
        assert_eq!(x.nodes[2].finalization_errors, Some(1));
        assert_eq!(s.finalization, Finalization::Failed);

        let (c, x) = read(Product::Jira, &sim(Product::Jira), Some(0), &[]);
        assert_eq!(c.upgrade_mode_enabled, Some(true), "derived from the state");
        assert_eq!(c.nodes.len(), 4, "with the lingering OFFLINE entry");
        assert_eq!(c.nodes[0].state.as_ref().unwrap().as_str(), "PASSIVATING");
        assert_eq!(c.nodes[1].state, Some(NodeState::Active));
        assert_eq!(x.nodes[1].alive, Some(false), "stopping: no heartbeat");
    }

    #[test]
    fn each_product_is_exposed_under_its_prefix() {
        for product in Product::ALL {
            let mut ex = Exporter::new(product, Tracker::default());
            let text = ex.poll_and_expose(Some((&sim(product), None)), &[], 0.0);
            let own = format!("{}_node_state{{", product.metric_prefix());
            assert!(text.contains(&own), "{product}");
            for other in Product::ALL.iter().filter(|p| **p != product) {
                let theirs = format!("{}_", other.metric_prefix());
                let stray = text
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.starts_with("bitbucket_zdu_exporter_"))
                    .find(|l| l.starts_with(&theirs));
                assert_eq!(stray, None, "{product} exposes {other}");
            }
            assert_eq!(
                text.contains("jira_zdu_node_alive"),
                product == Product::Jira
            );
        }
        assert!(is_node_state("jira_zdu_node_state{a=\"b\"}"));
        assert!(!is_node_state(
            "jira_zdu_node_state_entered_timestamp_seconds{a=\"b\"}"
        ));
    }
}

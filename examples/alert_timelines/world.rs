//! The world of one timeline under a virtual clock, one step per minute: the simulator's
//! cluster model of one product (Bitbucket, Confluence or Jira), the exporter processes
//! (sidecar per pod, or one central exporter) polling that product's API, their scrape
//! targets (job `<product>-zdu`, as the mixin's selectors expect) and what Prometheus stored
//! of them.

use std::collections::BTreeSet;

use bitbucket_zdu_exporter::model::{NodeState, Product};
use bitbucket_zdu_exporter::simulator::SimCluster;
use bitbucket_zdu_exporter::tracker::Tracker;

use crate::scrape::{Exporter, Store};

/// Where a sidecar's pod is.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Pod {
    /// Running: the sidecar answers, its local Bitbucket too.
    Running,
    /// Being deleted (drain, shutdown): the sidecar has exited, the target is still listed.
    Terminating,
    /// Deleted: no target.
    Gone,
    /// The new pod: the sidecar answers, its local Bitbucket not yet.
    Starting,
}

/// One scrape target.
pub struct Target {
    /// Target labels.
    pub labels: Vec<(String, String)>,
    /// The exporter process behind it.
    pub exporter: Exporter,
    /// Pod phase (sidecar mode; the central exporter is always Running unless down).
    pub pod: Pod,
    /// Was listed at the last scrape (to write staleness markers once).
    listed: bool,
    /// Pod generation (revision label, central pod name).
    pub generation: u32,
}

/// Monitoring noise and monitoring faults, by minute.
#[derive(Default)]
pub struct Noise {
    /// Minutes Bitbucket does not answer any exporter.
    pub unreachable: BTreeSet<u32>,
    /// (minute, target index) scrapes that fail.
    pub failed_scrapes: BTreeSet<(u32, usize)>,
    /// Target index, every k-th scrape fails, from..to minutes.
    pub flapping: Option<(usize, u32, u32, u32)>,
    /// Minutes the central exporter's process is down (its target stays listed).
    pub exporter_down: BTreeSet<u32>,
    /// (minute, node name): Confluence answers that node's state as `null` (its per-node
    /// call timed out) if the node is ACTIVE.
    pub null_states: BTreeSet<(u32, String)>,
}

/// The world.
pub struct World {
    /// The product the cluster runs.
    pub product: Product,
    /// The simulated cluster.
    pub sim: SimCluster,
    /// Scrape targets.
    pub targets: Vec<Target>,
    /// True: one central exporter; false: one sidecar per pod.
    pub central: bool,
    /// Exporters keep their memory across restarts (state file on a persistent volume).
    pub state_file: bool,
    /// Minutes since the start.
    pub t: u32,
    /// Prometheus's storage.
    pub store: Store,
    /// Noise.
    pub noise: Noise,
    /// Readable event log: (minute, event).
    pub log: Vec<(u32, String)>,
    /// Minutes in which Prometheus saw the cluster: at least one scrape succeeded and its
    /// exporter had the product's answer (not unreachable, not a starting pod's sidecar).
    pub seen: BTreeSet<u32>,
}

fn l(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

impl World {
    /// A STABLE cluster of `n` nodes of `product` on `version`, monitored for a week
    /// already.
    pub fn new(
        product: Product,
        version: &str,
        n: usize,
        (central, state_file): (bool, bool),
        wanted: BTreeSet<String>,
    ) -> Self {
        let sim = SimCluster::for_product(product, n, version);
        let mut w = World {
            product,
            sim,
            targets: Vec::new(),
            central,
            state_file,
            t: 0,
            store: Store::new(wanted),
            noise: Noise::default(),
            log: Vec::new(),
            seen: BTreeSet::new(),
        };
        let count = if central { 1 } else { n };
        for i in 0..count {
            let mut ex = Exporter::new(product, Tracker::default());
            // A week of history: the exporter saw this cluster STABLE since then.
            let local = if central { None } else { Some(i) };
            ex.poll_and_expose(Some((&w.sim, local)), &[], -7.0 * 86400.0);
            let labels = w.labels_for(i, 1);
            w.targets.push(Target {
                labels,
                exporter: ex,
                pod: Pod::Running,
                listed: false,
                generation: 1,
            });
        }
        w
    }

    fn labels_for(&self, i: usize, generation: u32) -> Vec<(String, String)> {
        let p = self.product.as_str();
        let job = format!("{p}-zdu");
        if self.central {
            vec![
                l("cluster", "prod"),
                l("instance", &format!("10.1.0.{generation}:9879")),
                l("job", &job),
                l("namespace", p),
                l("pod", &format!("zdu-exporter-{generation}")),
            ]
        } else {
            vec![
                l("container", "zdu-exporter"),
                l("controller_revision_hash", &format!("{p}-{generation}")),
                l("instance", &format!("10.0.{generation}.{i}:9879")),
                l("job", &job),
                l("namespace", p),
                l("pod", &format!("{p}-{i}")),
            ]
        }
    }

    /// Adds an event to the log.
    pub fn note(&mut self, what: impl Into<String>) {
        self.log.push((self.t, what.into()));
    }

    /// Sets node `i`'s state in the simulator's model (and logs it as the product
    /// answers it).
    pub fn node(&mut self, i: usize, state: NodeState) {
        self.note(format!(
            "{} -> {}",
            self.sim.nodes[i].name,
            shown(self.product, &state)
        ));
        self.sim.nodes[i].state = state;
    }

    /// The exporter of target `k` restarts (a new process; memory kept only with a state
    /// file); the central exporter is rescheduled to a new pod.
    pub fn restart_exporter(&mut self, k: usize) {
        let tracked = if self.state_file {
            self.targets[k].exporter.tracked.clone()
        } else {
            Tracker::default()
        };
        self.note(format!(
            "exporter {} restarts ({})",
            k,
            if self.state_file {
                "state file kept"
            } else {
                "memory lost"
            }
        ));
        let target = &mut self.targets[k];
        target.exporter = Exporter::new(self.product, tracked);
        if self.central {
            let g = target.generation + 1;
            let at = self.t as usize;
            self.store.gone(at, &self.targets[k].labels.clone());
            self.targets[k].listed = false;
            self.targets[k].generation = g;
            self.targets[k].labels = self.labels_for(k, g);
        }
    }

    /// Sidecar of pod `i` enters `pod` (a new pod gets new revision labels and a fresh
    /// sidecar).
    pub fn pod(&mut self, i: usize, pod: Pod) {
        if self.central || i >= self.targets.len() {
            return;
        }
        if pod == Pod::Starting {
            let g = self.targets[i].generation + 1;
            let tracked = if self.state_file {
                self.targets[i].exporter.tracked.clone()
            } else {
                Tracker::default()
            };
            self.targets[i].generation = g;
            self.targets[i].labels = self.labels_for(i, g);
            self.targets[i].exporter = Exporter::new(self.product, tracked);
        }
        self.targets[i].pod = pod;
    }

    /// One minute: every listed target is scraped once, then the clock advances.
    pub fn tick(&mut self) {
        let t = self.t;
        let at = t as usize;
        let now = f64::from(t) * 60.0;
        let reachable = !self.noise.unreachable.contains(&t);
        let nulls: Vec<String> = self
            .noise
            .null_states
            .range((t, String::new())..(t + 1, String::new()))
            .map(|(_, name)| name.clone())
            .filter(|name| {
                self.sim
                    .nodes
                    .iter()
                    .any(|n| &n.name == name && n.state == NodeState::Active)
            })
            .collect();
        for name in &nulls {
            self.note(format!("{name}: state null (its per-node call timed out)"));
        }
        for k in 0..self.targets.len() {
            let pod = self.targets[k].pod;
            if pod == Pod::Gone {
                if self.targets[k].listed {
                    self.store.gone(at, &self.targets[k].labels);
                    self.targets[k].listed = false;
                }
                continue;
            }
            self.targets[k].listed = true;
            let process_alive =
                pod != Pod::Terminating && !(self.central && self.noise.exporter_down.contains(&t));
            let flap = self.noise.flapping.is_some_and(|(tk, every, from, to)| {
                tk == k && t >= from && t < to && t.is_multiple_of(every)
            });
            let scrape_ok = process_alive && !flap && !self.noise.failed_scrapes.contains(&(t, k));
            let answers = reachable && pod != Pod::Starting;
            if scrape_ok && answers {
                self.seen.insert(t);
            }
            let body = if process_alive {
                let local = if self.central { None } else { Some(k) };
                let sim = &self.sim;
                Some(self.targets[k].exporter.poll_and_expose(
                    answers.then_some((sim, local)),
                    &nulls,
                    now,
                ))
            } else {
                None
            };
            let labels = self.targets[k].labels.clone();
            self.store
                .scrape(at, &labels, if scrape_ok { body.as_deref() } else { None });
        }
        self.t += 1;
    }

    /// `m` minutes.
    pub fn wait(&mut self, m: u32) {
        for _ in 0..m {
            self.tick();
        }
    }
}

/// How `product` answers a node in the simulator's `state` (the simulator's product faces:
/// `simulator::product`), for the event log.
pub fn shown(product: Product, state: &NodeState) -> String {
    let s = match (product, state) {
        (Product::Confluence, NodeState::Draining) => {
            "ACTIVE (stopping; no DRAINING in Confluence)"
        }
        (Product::Confluence, NodeState::Terminating) => "null state (stopping)",
        (Product::Jira, NodeState::Starting) => "ACTIVATING",
        (Product::Jira, NodeState::Draining) => "PASSIVATING",
        (Product::Jira, NodeState::Terminating) => "ACTIVE alive=false (stopping)",
        (Product::Jira, NodeState::Error) => "ACTIVE alive=false (no heartbeat)",
        _ => state.as_str(),
    };
    s.to_string()
}

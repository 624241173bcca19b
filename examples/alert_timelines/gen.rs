//! The seeded timeline generator: a product (Bitbucket, Confluence or Jira, a third of the
//! timelines each), a healthy rolling upgrade with every generator branch (node count, drain
//! lengths, pauses, idle READY_TO_UPGRADE, approval delay, ghosts, sidecar or central,
//! exporter restarts, scrape failures, short outages of the product) and at most one fault.
//! What differs per product (its noise, its faults' shapes and bounds) is in `gen/product.rs`.
//! The simulator's cluster model derives the cluster state and serves the product's answers;
//! the exporter's pipeline produces the series (see `world`).

mod product;

use std::collections::BTreeSet;

use bitbucket_zdu_exporter::model::{ClusterState, NodeState, Product};
use bitbucket_zdu_exporter::simulator::{next_version, Finalization};

use crate::rng::Rng;
use crate::world::{Pod, World};

/// The faults, each with the bound (minutes from its start, per product:
/// [`Fault::bound`]) within which a warning or critical alert must fire. Every product gets
/// every fault, in its own shape where it differs (`gen/product.rs`): Jira has no ERROR node
/// state, so its `NodeError` is a node ACTIVE without heartbeat (`alive: false`); Jira's
/// node entries never disappear, so its lost node is one that went OFFLINE and stays so.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// Upgrade mode on, no node ever drained.
    StuckReadyToUpgrade,
    /// One node upgraded, then nothing.
    StuckMixed,
    /// All nodes upgraded, nobody approves.
    StuckReadyToRunUpgradeTasks,
    /// Finalization fails.
    FinalizationFails,
    /// A restarted node in ERROR.
    NodeError,
    /// A node on the new version crashes a few minutes into every start.
    CrashLoop,
    /// A node's entry disappears while STABLE.
    NodeLostStable,
    /// A node's entry disappears while MIXED.
    NodeLostMixed,
    /// Bitbucket unreachable for a long time.
    Unreachable,
    /// The central exporter is down for a long time.
    ExporterDown,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 10] = [
        Fault::StuckReadyToUpgrade,
        Fault::StuckMixed,
        Fault::StuckReadyToRunUpgradeTasks,
        Fault::FinalizationFails,
        Fault::NodeError,
        Fault::CrashLoop,
        Fault::NodeLostStable,
        Fault::NodeLostMixed,
        Fault::Unreachable,
        Fault::ExporterDown,
    ];

    /// Minutes from the fault's start to its first warning/critical alert, at most, on a
    /// cluster of `product`.
    pub fn bound(self, product: Product) -> u32 {
        match self {
            // JiraZduNodeNoHeartbeat: alive=false for 10m, one scrape late.
            Fault::NodeError if product == Product::Jira => 13,
            // ConfluenceZduUpgradeStalled: 30m without a node change in MIXED (no drain).
            Fault::StuckMixed if product == Product::Confluence => 35,
            Fault::StuckReadyToUpgrade => 75,
            Fault::StuckMixed => 25,
            Fault::StuckReadyToRunUpgradeTasks => 65,
            Fault::FinalizationFails => 5,
            Fault::NodeError => 6,
            Fault::CrashLoop => 35,
            Fault::NodeLostStable | Fault::NodeLostMixed => 20,
            Fault::Unreachable => 6,
            Fault::ExporterDown => 8,
        }
    }
}

/// One generated timeline.
pub struct Timeline {
    /// Its seed.
    pub seed: u64,
    /// The product of its cluster.
    pub product: Product,
    /// The world after the run (series, log).
    pub world: World,
    /// The fault and its window [start, end) in minutes.
    pub fault: Option<(Fault, u32, u32)>,
    /// Which generator branches it took (coverage).
    pub branches: BTreeSet<String>,
}

struct Gen {
    rng: Rng,
    w: World,
    /// The cluster's nodes (indices `0..n` of the simulator's list; ghosts and lingering
    /// OFFLINE entries come after them).
    n: usize,
    fault: Option<Fault>,
    window: Option<(u32, u32)>,
    ghosts: bool,
    new_version: String,
    branches: BTreeSet<String>,
    /// Minute the cluster entered READY_TO_RUN_UPGRADE_TASKS (the last node booted on the
    /// new version): the admin's approval delay counts from there.
    ready_at: Option<u32>,
}

/// Generates and runs the timeline of `seed`.
pub fn timeline(seed: u64, wanted: BTreeSet<String>) -> Timeline {
    let mut rng = Rng::new(seed);
    let n = rng.range(2, 12) as usize;
    let slot = (seed % 16) as usize;
    // Consecutive seeds cycle through the products too (3 and 16 are coprime: any 48
    // timelines cover every product with every fault and every healthy slot).
    let product = product::pick(seed);
    // The central exporter's outage needs the central mode.
    let central = rng.chance(0.5) || slot == 15;
    let state_file = rng.chance(0.5);
    // Consecutive seeds cycle through 6 healthy slots and the 10 faults: any 16 timelines
    // cover every fault.
    let fault = if slot < 6 {
        None
    } else {
        Some(Fault::ALL[slot - 6])
    };
    let version = product::version(product);
    let mut g = Gen {
        // Jira's node ids are stable configuration: no IP-keyed ghosts (its lingering OFFLINE
        // entries are `gen/product.rs`'s noise).
        ghosts: product != Product::Jira && rng.chance(0.5),
        rng,
        w: World::new(product, version, n, (central, state_file), wanted),
        n,
        fault,
        window: None,
        new_version: next_version(version),
        branches: BTreeSet::new(),
        ready_at: None,
    };
    g.branch(format!(
        "nodes={}",
        if n <= 3 {
            "2-3"
        } else if n <= 8 {
            "4-8"
        } else {
            "9-12"
        }
    ));
    g.branch(if central { "central" } else { "sidecar" });
    g.branch(if state_file {
        "state-file"
    } else {
        "no-state-file"
    });
    g.branch(format!("product={product}"));
    if product != Product::Jira {
        g.branch(if g.ghosts { "ghosts" } else { "no-ghosts" });
    }
    g.branch(format!("fault={fault:?}"));
    g.noise();
    g.product_noise();
    g.run();
    Timeline {
        seed,
        product,
        fault: fault.map(|f| {
            let (s, e) = g.window.expect("fault window");
            (f, s, e)
        }),
        world: g.w,
        branches: g.branches,
    }
}

impl Gen {
    fn branch(&mut self, b: impl Into<String>) {
        self.branches.insert(b.into());
    }

    /// Monitoring noise over the first 12 hours (a timeline is shorter).
    fn noise(&mut self) {
        let targets = self.w.targets.len();
        for _ in 0..self.rng.range(0, 4) {
            let (m, k) = (
                self.rng.range(5, 400),
                self.rng.range(0, targets as u32 - 1),
            );
            self.w.noise.failed_scrapes.insert((m, k as usize));
            self.branch("isolated-scrape-failures");
        }
        if self.rng.chance(0.35) {
            let k = self.rng.range(0, targets as u32 - 1) as usize;
            let every = self.rng.range(2, 4);
            let from = self.rng.range(0, 100);
            let to = from + self.rng.range(30, 600);
            self.w.noise.flapping = Some((k, every, from, to));
            self.branch(format!("flapping-every-{every}"));
        }
        if self.rng.chance(0.3) {
            let from = self.rng.range(10, 300);
            for m in from..from + self.rng.range(1, 2) {
                self.w.noise.unreachable.insert(m);
            }
            self.branch("bitbucket-unreachable-briefly");
        }
    }

    fn wait_noisy(&mut self, m: u32) {
        for _ in 0..m {
            if self.rng.chance(0.004) {
                let k = self.rng.range(0, self.w.targets.len() as u32 - 1) as usize;
                self.w.restart_exporter(k);
                self.branch("exporter-restart");
            }
            self.w.tick();
        }
    }

    fn wait_rand(&mut self, lo: u32, hi: u32) {
        let m = self.rng.range(lo, hi);
        self.wait_noisy(m);
    }

    fn fault_start(&mut self) {
        self.window = Some((self.w.t, u32::MAX));
        self.w
            .note(format!("FAULT {:?} begins", self.fault.expect("fault")));
    }

    fn fault_end(&mut self) {
        let (s, _) = self.window.expect("fault started");
        self.window = Some((s, self.w.t));
        self.w
            .note(format!("FAULT {:?} ends", self.fault.expect("fault")));
    }

    fn product(&self) -> Product {
        self.w.product
    }

    fn is(&self, f: Fault) -> bool {
        self.fault == Some(f)
    }

    fn run(&mut self) {
        let n = self.n;
        self.wait_rand(5, 20);
        if self.is(Fault::NodeLostStable) {
            self.lose_node(n - 1, 120);
        }
        if self.is(Fault::Unreachable) || self.is(Fault::ExporterDown) {
            self.monitoring_outage();
        }
        self.w.sim.start().expect("start from STABLE");
        self.w
            .note(format!("POST {}/start: upgrade mode on", self.api()));
        if self.is(Fault::StuckReadyToUpgrade) {
            self.fault_start();
            self.wait_noisy(180);
            self.fault_end();
        } else {
            let idle = if self.rng.chance(0.3) {
                self.rng.range(20, 60)
            } else {
                self.rng.range(0, 10)
            };
            self.branch(if idle >= 20 {
                "idle-rtu-long"
            } else {
                "idle-rtu-short"
            });
            self.wait_noisy(idle);
        }
        let bad = self.rng.range(0, n as u32 - 1) as usize;
        for i in 0..n {
            self.upgrade_node(i, i == bad);
            if i == 0 && self.is(Fault::StuckMixed) {
                self.fault_start();
                self.wait_noisy(180);
                self.fault_end();
            }
            if i == 0 && self.is(Fault::NodeLostMixed) {
                self.lose_node(n - 1, 120);
            }
            let pause = if self.rng.chance(0.3) {
                self.rng.range(5, 15)
            } else {
                self.rng.range(0, 4)
            };
            self.wait_noisy(pause);
        }
        self.finalize();
        self.wait_rand(10, 30);
    }

    fn monitoring_outage(&mut self) {
        let minutes = self.rng.range(10, 40);
        self.fault_start();
        let t = self.w.t;
        for m in t..t + minutes {
            if self.is(Fault::Unreachable) {
                self.w.noise.unreachable.insert(m);
            } else {
                self.w.noise.exporter_down.insert(m);
            }
        }
        self.w.wait(minutes);
        self.fault_end();
    }

    fn drain(&mut self, i: usize) {
        // Long drains are Bitbucket's: only its DRAINING state with falling users and tasks
        // shows a drain (progress to the stall alerts); Confluence's node stays ACTIVE and
        // Jira's reports no users or tasks, so a node is stopped within minutes.
        let d = if self.product() == Product::Bitbucket && self.rng.chance(0.2) {
            self.rng.range(15, 60)
        } else {
            self.rng.range(1, 8)
        };
        self.branch(if d >= 15 { "drain-long" } else { "drain-short" });
        let step = self.rng.range(1, 4);
        let users0 = u64::from(self.rng.range(d.max(5), 60 + d));
        let tasks0 = u64::from(self.rng.range(d / 2 + 1, d + 10));
        self.w.node(i, NodeState::Draining);
        self.w.pod(i, Pod::Terminating);
        for j in 0..d {
            if j % step == 0 {
                let left = u64::from(d - j - 1);
                self.w.sim.nodes[i].users = Some(users0 * left / u64::from(d));
                self.w.sim.nodes[i].tasks = Some(tasks0 * left / u64::from(d));
            }
            self.wait_noisy(1);
        }
        self.w.sim.nodes[i].users = Some(0);
        self.w.sim.nodes[i].tasks = Some(0);
        self.w.node(i, NodeState::Terminating);
        self.wait_noisy(1);
        self.w.node(i, NodeState::Offline);
        self.w.sim.nodes[i].version = None;
        self.w.sim.nodes[i].build_number = None;
        self.w.sim.nodes[i].users = None;
        self.w.sim.nodes[i].tasks = None;
        self.w.pod(i, Pod::Gone);
        let down = self.rng.range(1, 3);
        self.wait_noisy(down);
    }

    fn boot(&mut self, i: usize) {
        if self.ghosts {
            // Kubernetes: the pod comes back with a new IP, hence a new node id; the old
            // entry stays as an OFFLINE ghost.
            let ghost = self.w.sim.nodes[i].clone();
            self.w.sim.nodes.push(ghost);
            let node = &mut self.w.sim.nodes[i];
            node.id = format!("{}-{}", node.id, self.w.t);
            node.ip = format!("10.9.{}.{}", self.w.t % 250, i);
        }
        self.w.node(i, NodeState::Starting);
        self.w.sim.nodes[i].version = Some(self.new_version.clone());
        self.w.sim.nodes[i].build_number = Some(product::build_number(&self.new_version));
        self.w.pod(i, Pod::Starting);
        if self.ready_at.is_none() && self.w.sim.state() == ClusterState::ReadyToRunUpgradeTasks {
            self.ready_at = Some(self.w.t);
            self.w
                .note("every live node on the new version: READY_TO_RUN_UPGRADE_TASKS");
        }
    }

    fn upgrade_node(&mut self, i: usize, bad: bool) {
        self.drain(i);
        self.boot(i);
        let start = self.rng.range(1, 4);
        self.wait_noisy(start);
        if bad && self.is(Fault::NodeError) {
            self.w.node(i, NodeState::Error);
            self.fault_start();
            self.wait_rand(60, 150);
            self.w.node(i, NodeState::Starting);
            self.fault_end();
            self.wait_noisy(2);
        }
        if bad && self.is(Fault::CrashLoop) {
            self.crash_loop(i);
        }
        self.w.node(i, NodeState::Active);
        self.w.sim.nodes[i].users = Some(u64::from(self.rng.range(0, 40)));
        self.w.sim.nodes[i].tasks = Some(u64::from(self.rng.range(0, 5)));
        self.w.pod(i, Pod::Running);
    }

    fn crash_loop(&mut self, i: usize) {
        self.fault_start();
        let until = self.w.t + self.rng.range(90, 180);
        while self.w.t < until {
            self.w.node(i, NodeState::Active);
            self.w.pod(i, Pod::Running);
            self.wait_rand(2, 5);
            self.w
                .note(format!("{} OOM-killed", self.w.sim.nodes[i].name));
            self.w.node(i, NodeState::Offline);
            self.w.pod(i, Pod::Gone);
            self.wait_rand(1, 3);
            self.w.node(i, NodeState::Starting);
            self.w.pod(i, Pod::Starting);
            self.wait_rand(2, 4);
        }
        self.fault_end();
    }

    fn finalize(&mut self) {
        self.w
            .note("all nodes upgraded and started: the admin may approve");
        if self.is(Fault::StuckReadyToRunUpgradeTasks) {
            self.fault_start();
            self.wait_noisy(180);
            self.fault_end();
        } else {
            // A healthy admin approves within 50 minutes of the cluster becoming ready (the
            // last node's start and the pause after it count: the cluster already waits).
            let delay = self.rng.range(0, 50);
            self.branch(if delay >= 20 {
                "approval-slow"
            } else {
                "approval-fast"
            });
            let waited = self.w.t - self.ready_at.expect("the last node's boot");
            self.wait_noisy(delay.saturating_sub(waited));
        }
        self.w
            .sim
            .approve()
            .expect("approve in READY_TO_RUN_UPGRADE_TASKS");
        self.w
            .note(format!("POST {}/approve: upgrade tasks run", self.api()));
        self.wait_rand(1, 10);
        if self.is(Fault::FinalizationFails) {
            self.w.sim.finish_finalization(false);
            self.w.note("upgrade tasks FAILED");
            self.fault_start();
            self.wait_rand(30, 90);
            self.w.sim.finalization = Finalization::Running;
            self.w
                .note(format!("POST {}/retryUpgrade: tasks run again", self.api()));
            self.fault_end();
            self.wait_rand(1, 10);
        }
        self.w.sim.finish_finalization(true);
        self.w.note("upgrade finished: STABLE");
    }
}

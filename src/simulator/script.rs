//! The scenario scripts: how the simulated cluster moves over time (upgrades node by node,
//! ghosts, failures) and the random walk of users and tasks.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::cluster::{build_number, next_version};
use super::{Scenario, Simulator};
use crate::model::NodeState;

/// Timings of one node's upgrade, before the speed factor.
#[derive(Debug, Clone, Copy)]
pub struct NodeTimings {
    /// Draining its users and tasks.
    pub drain: Duration,
    /// Shutting down.
    pub terminate: Duration,
    /// Installing the new version while OFFLINE.
    pub install: Duration,
    /// Starting up on the new version.
    pub start: Duration,
}

impl Default for NodeTimings {
    fn default() -> Self {
        NodeTimings {
            drain: Duration::from_secs(20),
            terminate: Duration::from_secs(5),
            install: Duration::from_secs(20),
            start: Duration::from_secs(30),
        }
    }
}

impl Simulator {
    pub(super) async fn random_walk(self: Arc<Self>) {
        loop {
            self.sleep(Duration::from_secs(2)).await;
            self.with_cluster(|c| {
                let mut rng = rand::rng();
                for n in c.nodes.iter_mut().filter(|n| n.state == NodeState::Active) {
                    let users = n.users.unwrap_or(0) as i64 + rng.random_range(-3..=3);
                    n.users = Some(users.clamp(5, 80) as u64);
                    let tasks = n.tasks.unwrap_or(0) as i64 + rng.random_range(-2..=2);
                    n.tasks = Some(tasks.clamp(0, 15) as u64);
                }
            });
        }
    }

    pub(super) async fn run_script(self: &Arc<Self>) {
        match self.scenario {
            Scenario::Stable | Scenario::NotClustered => std::future::pending::<()>().await,
            Scenario::RollingUpgrade => loop {
                self.full_upgrade(false, true).await;
            },
            Scenario::GhostNodes => loop {
                self.full_upgrade(true, true).await;
            },
            Scenario::TasksFailed => {
                self.full_upgrade(false, false).await;
                std::future::pending::<()>().await
            }
            Scenario::StuckMixed | Scenario::NodeError => {
                self.sleep(Duration::from_secs(10)).await;
                let _ = self.with_cluster(|c| c.start());
                let target = self.with_cluster(|c| {
                    next_version(c.original_version.as_deref().unwrap_or("8.19.0"))
                });
                self.sleep(Duration::from_secs(10)).await;
                self.upgrade_node(0, &target, false).await;
                if self.scenario == Scenario::NodeError {
                    self.sleep(Duration::from_secs(10)).await;
                    self.with_cluster(|c| {
                        if let Some(n) = c.nodes.get_mut(1) {
                            n.state = NodeState::Error;
                        }
                    });
                }
                std::future::pending::<()>().await
            }
        }
    }

    /// One whole rolling upgrade: start, every node in turn, approval, finalization.
    async fn full_upgrade(self: &Arc<Self>, new_ips: bool, success: bool) {
        self.sleep(Duration::from_secs(20)).await;
        if self.with_cluster(|c| c.start()).is_err() {
            self.sleep(Duration::from_secs(10)).await;
            return;
        }
        let target =
            self.with_cluster(|c| next_version(c.original_version.as_deref().unwrap_or("8.19.0")));
        self.sleep(Duration::from_secs(15)).await;
        let names: Vec<String> =
            self.with_cluster(|c| c.nodes.iter().map(|n| n.name.clone()).collect());
        for name in names {
            let idx = self.with_cluster(|c| {
                c.nodes
                    .iter()
                    .position(|n| n.name == name && n.state != NodeState::Offline)
            });
            if let Some(idx) = idx {
                self.upgrade_node(idx, &target, new_ips).await;
            }
            self.sleep(Duration::from_secs(5)).await;
        }
        // Waiting for an admin to approve.
        self.sleep(Duration::from_secs(30)).await;
        if self.with_cluster(|c| c.approve()).is_ok() {
            self.sleep(Duration::from_secs(15)).await;
            self.with_cluster(|c| c.finish_finalization(success));
        }
        self.sleep(Duration::from_secs(30)).await;
    }

    /// Drains, stops, upgrades and restarts node `idx` on `version`. With `new_ip` the node
    /// comes back as a new entry with a new IP, leaving an OFFLINE ghost (as on Kubernetes).
    pub async fn upgrade_node(self: &Arc<Self>, idx: usize, version: &str, new_ip: bool) {
        let t = self.timings;
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(idx) {
                n.state = NodeState::Draining;
            }
        });
        let steps = 5u32;
        for step in 1..=steps {
            self.sleep(t.drain / steps).await;
            self.with_cluster(|c| {
                if let Some(n) = c.nodes.get_mut(idx) {
                    let left = (steps - step) as f64 / (steps - step + 1) as f64;
                    n.users = n.users.map(|u| (u as f64 * left).floor() as u64);
                    n.tasks = n.tasks.map(|u| (u as f64 * left).floor() as u64);
                }
            });
        }
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(idx) {
                n.state = NodeState::Terminating;
                n.users = Some(0);
                n.tasks = Some(0);
            }
        });
        self.sleep(t.terminate).await;
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(idx) {
                n.state = NodeState::Offline;
                n.version = None;
                n.build_number = None;
                n.users = None;
                n.tasks = None;
            }
        });
        self.sleep(t.install).await;
        let live_idx = self.with_cluster(|c| {
            let n = c.nodes.get(idx)?.clone();
            let mut fresh = n.clone();
            fresh.state = NodeState::Starting;
            fresh.version = Some(version.to_string());
            fresh.build_number = Some(build_number(version));
            fresh.users = Some(0);
            fresh.tasks = Some(0);
            if new_ip {
                let last: u32 =
                    n.ip.rsplit('.')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(10);
                fresh.ip = format!("10.0.1.{}", (last + 37) % 250 + 2);
                fresh.id = format!("{}-r", n.id);
                c.nodes.push(fresh);
                Some(c.nodes.len() - 1)
            } else {
                c.nodes[idx] = fresh;
                Some(idx)
            }
        });
        let Some(live_idx) = live_idx else { return };
        self.sleep(t.start).await;
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(live_idx) {
                n.state = NodeState::Active;
                n.users = Some(8);
                n.tasks = Some(1);
            }
        });
    }
}

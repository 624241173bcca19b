//! The simulated cluster as data: nodes, Bitbucket's derivation of the cluster state from
//! them, the 409 rules of start/cancel/approve, and the JSON Bitbucket answers with.

use serde_json::{json, Value};

use crate::model::{ClusterState, NodeState};

/// One simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNode {
    /// Node id, as in `/rest/zdu/nodes/{id}`.
    pub id: String,
    /// Node name (`bitbucket-0`, `confluence-0`, `jira-0`, …).
    pub name: String,
    /// IP address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Node state.
    pub state: NodeState,
    /// Bitbucket version; `None` while the node is down.
    pub version: Option<String>,
    /// Build number matching the version.
    pub build_number: Option<String>,
    /// Active users.
    pub users: Option<u64>,
    /// Running tasks.
    pub tasks: Option<u64>,
}

/// Finalization ("upgrade tasks") progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalization {
    /// No finalization started.
    Idle,
    /// Upgrade tasks running after approval.
    Running,
    /// Upgrade tasks failed.
    Failed,
}

/// The simulated cluster. Its state is derived on every read, as Bitbucket does.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCluster {
    /// Upgrade mode is on (after `start`).
    pub upgrade_mode: bool,
    /// The version the upgrade started from.
    pub original_version: Option<String>,
    /// The nodes, in order.
    pub nodes: Vec<SimNode>,
    /// Where the finalization stands.
    pub finalization: Finalization,
    /// Answer every request as a non-clustered instance does.
    pub not_clustered: bool,
}

/// An action that is not legal in the current state (Bitbucket answers 409, empty body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} is not allowed in state {state}")]
pub struct Conflict {
    /// The refused action (`start`, `cancel`, `approve`).
    pub action: &'static str,
    /// The cluster state that refused it.
    pub state: String,
}

pub(super) fn build_number(version: &str) -> String {
    // 8.19.1 -> 8019001, like Bitbucket's build numbers.
    let parts: Vec<u64> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or(0);
    format!("{}", get(0) * 1_000_000 + get(1) * 1_000 + get(2))
}

/// The version after `v` (patch + 1).
pub fn next_version(v: &str) -> String {
    let mut parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    while parts.len() < 3 {
        parts.push(0);
    }
    parts[2] += 1;
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

impl SimCluster {
    /// `n` ACTIVE Bitbucket nodes on `version`, named like Helm StatefulSet pods
    /// (`bitbucket-0`, …).
    pub fn new(n: usize, version: &str) -> Self {
        SimCluster::for_product(crate::model::Product::Bitbucket, n, version)
    }

    /// `n` ACTIVE nodes of `product` on `version`, named like the product's Helm
    /// StatefulSet pods: `bitbucket-0`, `confluence-0`, `jira-0`, ….
    pub fn for_product(product: crate::model::Product, n: usize, version: &str) -> Self {
        let nodes = (0..n)
            .map(|i| SimNode {
                id: format!(
                    "{:08x}-0000-4000-8000-{:012x}",
                    0x5eed0000u32 + i as u32,
                    i + 1
                ),
                name: format!("{product}-{i}"),
                ip: format!("10.0.0.{}", 10 + i),
                port: 5701,
                state: NodeState::Active,
                version: Some(version.to_string()),
                build_number: Some(build_number(version)),
                users: Some(20 + 7 * i as u64),
                tasks: Some(3 + i as u64),
            })
            .collect();
        SimCluster {
            upgrade_mode: false,
            original_version: None,
            nodes,
            finalization: Finalization::Idle,
            not_clustered: false,
        }
    }

    /// The cluster state, derived in Bitbucket's order.
    pub fn state(&self) -> ClusterState {
        if self.finalization == Finalization::Running {
            return ClusterState::RunningUpgradeTasks;
        }
        if !self.upgrade_mode {
            return if self.finalization == Finalization::Failed {
                ClusterState::UpgradeTasksFailed
            } else {
                ClusterState::Stable
            };
        }
        if self.nodes.iter().any(|n| n.state == NodeState::Error) {
            return ClusterState::Mixed;
        }
        let mut versions: Vec<Option<&str>> = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Offline)
            .map(|n| n.version.as_deref())
            .collect();
        versions.sort();
        versions.dedup();
        if versions.len() > 1 {
            return ClusterState::Mixed;
        }
        match versions.first() {
            None => ClusterState::ReadyToUpgrade,
            Some(v) if *v == self.original_version.as_deref() => ClusterState::ReadyToUpgrade,
            Some(_) => ClusterState::ReadyToRunUpgradeTasks,
        }
    }

    fn conflict(&self, action: &'static str) -> Conflict {
        Conflict {
            action,
            state: self.state().to_string(),
        }
    }

    /// `POST /start`: from STABLE only.
    pub fn start(&mut self) -> Result<(), Conflict> {
        if self.state() != ClusterState::Stable {
            return Err(self.conflict("start"));
        }
        self.upgrade_mode = true;
        self.finalization = Finalization::Idle;
        self.original_version = self
            .nodes
            .iter()
            .find(|n| n.state != NodeState::Offline)
            .and_then(|n| n.version.clone());
        Ok(())
    }

    /// `POST /cancel`: from READY_TO_UPGRADE only.
    pub fn cancel(&mut self) -> Result<(), Conflict> {
        if self.state() != ClusterState::ReadyToUpgrade {
            return Err(self.conflict("cancel"));
        }
        self.upgrade_mode = false;
        self.original_version = None;
        self.drop_ghosts();
        Ok(())
    }

    /// `POST /approve`: from READY_TO_RUN_UPGRADE_TASKS only; finalization starts.
    pub fn approve(&mut self) -> Result<(), Conflict> {
        if self.state() != ClusterState::ReadyToRunUpgradeTasks {
            return Err(self.conflict("approve"));
        }
        self.finalization = Finalization::Running;
        Ok(())
    }

    /// Ends finalization: upgrade mode off, ghosts gone, STABLE or UPGRADE_TASKS_FAILED.
    pub fn finish_finalization(&mut self, success: bool) {
        self.finalization = if success {
            Finalization::Idle
        } else {
            Finalization::Failed
        };
        self.upgrade_mode = false;
        self.original_version = None;
        self.drop_ghosts();
    }

    fn drop_ghosts(&mut self) {
        let live: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Offline)
            .map(|n| n.name.clone())
            .collect();
        self.nodes
            .retain(|n| !(n.state == NodeState::Offline && live.contains(&n.name)));
    }

    /// The `/cluster` JSON, with `local` set for node `local`.
    pub fn cluster_json(&self, local: Option<usize>, base: &str) -> Value {
        let mut nodes: Vec<(usize, &SimNode)> = self.nodes.iter().enumerate().collect();
        nodes.sort_by(|a, b| (&a.1.name, &a.1.ip).cmp(&(&b.1.name, &b.1.ip)));
        json!({
            "upgradeModeEnabled": self.upgrade_mode,
            "state": self.state().as_str(),
            "originalVersion": self.original_version,
            "nodes": nodes.iter().map(|(i, n)| node_json(n, Some(*i) == local, base)).collect::<Vec<_>>(),
            "links": [{"rel": "self", "href": format!("{base}/rest/zdu/cluster")}],
        })
    }
}

pub(super) fn node_json(n: &SimNode, local: bool, base: &str) -> Value {
    json!({
        "id": n.id,
        "name": n.name,
        "ipAddress": n.ip,
        "state": n.state.as_str(),
        "tasksTotal": n.tasks,
        "activeUserCount": n.users,
        "buildNumber": n.build_number,
        "version": n.version,
        "local": local,
        "portNumber": n.port,
        "links": [{"rel": "self", "href": format!("{base}/rest/zdu/nodes/{}", n.id)}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_derivation_follows_bitbucket() {
        let mut c = SimCluster::new(3, "8.19.0");
        assert_eq!(c.state(), ClusterState::Stable);
        assert!(c.cancel().is_err());
        assert!(c.approve().is_err());
        c.start().unwrap();
        assert_eq!(c.state(), ClusterState::ReadyToUpgrade);
        assert!(c.start().is_err());
        c.nodes[0].state = NodeState::Offline;
        c.nodes[0].version = None;
        assert_eq!(
            c.state(),
            ClusterState::ReadyToUpgrade,
            "OFFLINE takes no part"
        );
        c.nodes[0].state = NodeState::Active;
        c.nodes[0].version = Some("8.19.1".into());
        assert_eq!(c.state(), ClusterState::Mixed);
        assert!(c.cancel().is_err(), "MIXED cannot be cancelled");
        for n in &mut c.nodes {
            n.version = Some("8.19.1".into());
        }
        assert_eq!(c.state(), ClusterState::ReadyToRunUpgradeTasks);
        c.nodes[2].state = NodeState::Error;
        assert_eq!(c.state(), ClusterState::Mixed, "ERROR holds MIXED");
        assert!(c.approve().is_err());
        c.nodes[2].state = NodeState::Active;
        c.approve().unwrap();
        assert_eq!(c.state(), ClusterState::RunningUpgradeTasks);
        c.finish_finalization(false);
        assert_eq!(c.state(), ClusterState::UpgradeTasksFailed);
        c.finalization = Finalization::Idle;
        assert_eq!(c.state(), ClusterState::Stable);
    }

    #[test]
    fn versions() {
        assert_eq!(next_version("8.19.9"), "8.19.10");
        assert_eq!(build_number("8.19.1"), "8019001");
    }
}

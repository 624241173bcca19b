//! What the generator does differently per product, following the simulator's product
//! faces (`simulator::product`) and `docs/alerts-and-dashboards.md`:
//!
//! - Bitbucket: the template; Kubernetes ghosts, long drains (DRAINING with users and tasks
//!   falling), a lost node's entry disappears from `/rest/zdu/cluster`.
//! - Confluence: the same plugin and API, so ghosts and a disappearing lost node as
//!   Bitbucket; no DRAINING (a node stays ACTIVE until it stops, then reads `null` while
//!   stopping and OFFLINE), hence short drains only; a failed finalization shows
//!   UPGRADE_TASKS_FAILED on the cluster and the nodes plus per-node finalization errors; a stuck
//!   MIXED is bounded by 35 min (its stall threshold is 30m: no drain is visible). Noise
//!   of its own: now and then an ACTIVE node answers `state: null` for a minute (its per-node
//!   call timed out), sometimes several times on one node within half an hour.
//! - Jira: no upgrade-mode flag (the exporter derives it), nodes from `/cluster/nodes`
//!   (ACTIVATING, PASSIVATING, ACTIVE with `alive`, OFFLINE), no users or tasks (short drains
//!   only), stable node ids (no ghosts). Noise of its own: lingering OFFLINE entries of nodes
//!   long gone (the simulator always lists one, `jira-stale`; sometimes more), which must
//!   never page. Faults in its shape: no ERROR state, so `NodeError` is a node ACTIVE without
//!   heartbeat for an hour or more (JiraZduNodeNoHeartbeat, bound 13 min); entries never
//!   disappear, so a lost node is one that went OFFLINE and does not come back.

use bitbucket_zdu_exporter::model::{NodeState, Product};
use bitbucket_zdu_exporter::simulator::SimNode;

use super::Gen;
use crate::world::Pod;

/// The product of the timeline of `seed`: a third each, cycling with consecutive seeds.
pub fn pick(seed: u64) -> Product {
    Product::ALL[(seed % 3) as usize]
}

/// The version a `product` cluster runs before the upgrade.
pub fn version(product: Product) -> &'static str {
    match product {
        Product::Bitbucket => "8.19.0",
        Product::Confluence => "9.2.13",
        Product::Jira => "9.4.30",
    }
}

/// A build number for `version` (8.19.1 → 8019001); Jira's simulator face computes its own.
pub fn build_number(version: &str) -> String {
    let p: Vec<u64> = version.split('.').filter_map(|s| s.parse().ok()).collect();
    let at = |i: usize| p.get(i).copied().unwrap_or(0);
    (at(0) * 1_000_000 + at(1) * 1_000 + at(2)).to_string()
}

impl Gen {
    /// The product's upgrade API, for the event log.
    pub(super) fn api(&self) -> &'static str {
        match self.product() {
            Product::Jira => "/rest/api/2/cluster/zdu",
            _ => "/rest/zdu",
        }
    }

    /// The product's own monitoring noise (see the module documentation).
    pub(super) fn product_noise(&mut self) {
        match self.product() {
            Product::Bitbucket => {}
            Product::Confluence => self.null_states(),
            Product::Jira => self.stale_entries(),
        }
    }

    /// Confluence: ACTIVE nodes whose state reads `null` for a minute now and then; one
    /// timeline in four has a node that times out 2-3 times within 25 minutes.
    fn null_states(&mut self) {
        let n = self.n as u32;
        for _ in 0..self.rng.range(0, 3) {
            let (m, k) = (self.rng.range(5, 400), self.rng.range(0, n - 1));
            let name = self.w.sim.nodes[k as usize].name.clone();
            self.w.noise.null_states.insert((m, name));
            self.branch("null-states-isolated");
        }
        if self.rng.chance(0.25) {
            let k = self.rng.range(0, n - 1) as usize;
            let name = self.w.sim.nodes[k].name.clone();
            let from = self.rng.range(5, 300);
            for _ in 0..self.rng.range(2, 3) {
                let m = from + self.rng.range(0, 25);
                self.w.noise.null_states.insert((m, name.clone()));
            }
            self.branch("null-states-repeated");
        }
    }

    /// Jira: besides the simulator's `jira-stale`, sometimes 1-3 more OFFLINE entries of
    /// nodes removed long ago, on an older version, lingering the whole timeline.
    fn stale_entries(&mut self) {
        if !self.rng.chance(0.5) {
            return;
        }
        for k in 0..self.rng.range(1, 3) {
            let mut node: SimNode = self.w.sim.nodes[0].clone();
            node.id = format!("jira-old-{k}");
            node.name = node.id.clone();
            node.ip = format!("10.0.8.{k}");
            node.state = NodeState::Offline;
            node.version = Some("9.4.2".into());
            node.build_number = Some(build_number("9.4.2"));
            self.w.sim.nodes.push(node);
        }
        self.branch("stale-offline-entries");
    }

    /// Node `i` is lost for `minutes` (the fault window), then comes back: its entry
    /// disappears (Bitbucket, Confluence) or goes OFFLINE (Jira keeps every entry).
    pub(super) fn lose_node(&mut self, i: usize, minutes: u32) {
        let name = self.w.sim.nodes[i].name.clone();
        let removed = if self.product() == Product::Jira {
            self.w.note(format!("{name} shut down, not coming back"));
            let before = self.w.sim.nodes[i].state.clone();
            self.w.node(i, NodeState::Offline);
            Err(before)
        } else {
            self.w
                .note(format!("{name} disappears from /rest/zdu/cluster"));
            Ok(self.w.sim.nodes.remove(i))
        };
        self.w.pod(i, Pod::Gone);
        self.fault_start();
        self.wait_noisy(minutes);
        match removed {
            Ok(node) => self.w.sim.nodes.insert(i, node),
            Err(state) => self.w.node(i, state),
        }
        self.w.note("the node is back");
        self.w.pod(i, Pod::Starting);
        self.w.pod(i, Pod::Running);
        self.fault_end();
        self.wait_noisy(5);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::gen::Fault;

    #[test]
    fn any_48_consecutive_seeds_cover_every_product_with_every_slot() {
        for start in [0u64, 1_000_003, 7_000_021] {
            let combos: BTreeSet<(Product, u64)> =
                (start..start + 48).map(|s| (pick(s), s % 16)).collect();
            assert_eq!(combos.len(), 48, "from seed {start}");
        }
    }

    #[test]
    fn bounds_follow_the_product_and_builds_the_version() {
        assert_eq!(Fault::NodeError.bound(Product::Bitbucket), 6);
        assert_eq!(Fault::NodeError.bound(Product::Confluence), 6);
        assert_eq!(Fault::NodeError.bound(Product::Jira), 13);
        assert_eq!(Fault::StuckMixed.bound(Product::Confluence), 35);
        for f in Fault::ALL {
            assert!(
                f.bound(Product::Jira) >= f.bound(Product::Bitbucket),
                "{f:?}"
            );
        }
        assert_eq!(build_number("8.19.1"), "8019001");
        assert_eq!(build_number("9.2.13"), "9002013");
    }
}

//! Which Atlassian Data Center product a target is: Bitbucket, Confluence or Jira.
//!
//! The product decides which upstream paths are polled and how their answers are read
//! (Bitbucket and Confluence share the rolling-upgrade plugin's `/rest/zdu` resource; Jira has
//! its own `/rest/api/2/cluster` resource), and the prefix of the target's metric families
//! (`bitbucket_zdu_*`, `confluence_zdu_*`, `jira_zdu_*`). The exporter's own metrics keep the
//! `bitbucket_zdu_exporter_*` prefix whatever the products polled.

use serde::{Deserialize, Serialize};

/// The product a target runs. `bitbucket` when not configured.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Bitbucket Data Center: `GET /rest/zdu/cluster` and `/rest/zdu/state`.
    #[default]
    Bitbucket,
    /// Confluence Data Center: the same `/rest/zdu` resource, with finalization fields.
    Confluence,
    /// Jira Data Center (Software, Service Management): `GET /rest/api/2/cluster/zdu/state`
    /// and `GET /rest/api/2/cluster/nodes`.
    Jira,
}

impl Product {
    /// Every product, in the order the catalogue and the docs list them.
    pub const ALL: [Product; 3] = [Product::Bitbucket, Product::Confluence, Product::Jira];

    /// The configuration spelling: `bitbucket`, `confluence`, `jira`.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Bitbucket => "bitbucket",
            Product::Confluence => "confluence",
            Product::Jira => "jira",
        }
    }

    /// The product's display name: `Bitbucket`, `Confluence`, `Jira`.
    pub fn title(self) -> &'static str {
        match self {
            Product::Bitbucket => "Bitbucket",
            Product::Confluence => "Confluence",
            Product::Jira => "Jira",
        }
    }

    /// The prefix of the target's metric families: `bitbucket_zdu`, `confluence_zdu`,
    /// `jira_zdu` (the families are `<prefix>_up`, `<prefix>_cluster_state`, ...).
    pub fn metric_prefix(self) -> &'static str {
        match self {
            Product::Bitbucket => "bitbucket_zdu",
            Product::Confluence => "confluence_zdu",
            Product::Jira => "jira_zdu",
        }
    }

    /// The endpoints (from the site root) of one cluster reading, as help texts name them:
    /// `/rest/zdu/cluster`, or Jira's state and node list.
    pub fn cluster_endpoints(self) -> &'static str {
        match self {
            Product::Bitbucket | Product::Confluence => "/rest/zdu/cluster",
            Product::Jira => "/rest/api/2/cluster/zdu/state and /rest/api/2/cluster/nodes",
        }
    }

    /// The endpoint (from the site root) of the cluster-state reading: `/rest/zdu/state`, or
    /// Jira's `/rest/api/2/cluster/zdu/state`.
    pub fn state_endpoint(self) -> &'static str {
        match self {
            Product::Bitbucket | Product::Confluence => "/rest/zdu/state",
            Product::Jira => "/rest/api/2/cluster/zdu/state",
        }
    }

    /// The node states the product knows, in lifecycle order: the `state` values of its
    /// `_node_state` and `_nodes` families (any other value is counted as unknown, never
    /// fatal). Confluence has no DRAINING and two finalization states; Jira has its own set.
    pub fn node_states(self) -> &'static [&'static str] {
        match self {
            Product::Bitbucket => &[
                "STARTING",
                "ACTIVE",
                "DRAINING",
                "TERMINATING",
                "OFFLINE",
                "ERROR",
            ],
            Product::Confluence => &[
                "STARTING",
                "ACTIVE",
                "TERMINATING",
                "OFFLINE",
                "ERROR",
                "RUNNING_FINALIZE_UPGRADE_TASKS",
                "UPGRADE_TASKS_FAILED",
            ],
            Product::Jira => &["ACTIVE", "PASSIVE", "ACTIVATING", "PASSIVATING", "OFFLINE"],
        }
    }

    /// Parses the configuration spelling (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Product> {
        Product::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Product;

    #[test]
    fn spellings_round_trip_and_default_is_bitbucket() {
        for p in Product::ALL {
            assert_eq!(Product::parse(p.as_str()), Some(p));
            assert_eq!(Product::parse(&p.as_str().to_uppercase()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Product>(&json).unwrap(), p);
        }
        assert_eq!(Product::default(), Product::Bitbucket);
        assert_eq!(Product::parse("bamboo"), None);
        assert_eq!(Product::Jira.metric_prefix(), "jira_zdu");
        assert_eq!(Product::Confluence.title(), "Confluence");
        let known: Vec<&str> = crate::model::NodeState::KNOWN
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(Product::Bitbucket.node_states(), known.as_slice());
        assert!(!Product::Confluence.node_states().contains(&"DRAINING"));
        assert!(Product::Jira.node_states().contains(&"PASSIVATING"));
    }
}

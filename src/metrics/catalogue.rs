//! The metric catalogue: every family the exporter serves, defined once with its name, type,
//! help text, label names and group. Encoders refer to these descriptors and only supply
//! label values and sample values; `docs/metrics.json` (the contract the README table check
//! and the alert and dashboard tooling read) is generated from [`ALL`] by
//! [`super::contract`] and golden-tested by `tests/it/metrics_contract.rs`.
//!
//! Adding a metric: add a `pub const` [`Family`] here (wrapped in `only` when not every
//! product has it: the product table the encoders' [`Family::describe`] reads), list it in
//! [`ALL`] at the place it is emitted, encode it in its group's module, run `UPDATE_GOLDEN=1 cargo test --test
//! it metrics_contract` and add its README row.
//!
//! The file is a table: one constant per family with its help text, hence its length.

pub use super::contract::contract_json;
use super::family::{family, only};
pub use super::family::{Family, Group, Kind};
use crate::model::Product;

/// The suffix of help texts whose values come from the background poll.
macro_rules! polled {
    ($text:literal) => {
        concat!(
            $text,
            " (from the exporter's background poll of Bitbucket's ZDU API)."
        )
    };
}

/// The products with a node answering `/rest/zdu/state` and with tasks and users per node.
const ZDU_PLUGIN: &[Product] = &[Product::Bitbucket, Product::Confluence];

use Group::{Cluster, Exporter, Nodes, Polls, Process, Responder, Upgrade};
use Kind::{Counter, Gauge, Histogram};

const NODE: &[&str] = &["node_id", "node_name"];

// --- exporter -------------------------------------------------------------------------------

/// `bitbucket_zdu_exporter_build_info`.
pub const EXPORTER_BUILD_INFO: Family = family(
    "bitbucket_zdu_exporter_build_info",
    Gauge,
    Exporter,
    &["version", "revision", "rustc"],
    "A metric with a constant '1' value labeled by version, revision and rustc of the exporter.",
);
/// `bitbucket_zdu_exporter_targets`.
pub const EXPORTER_TARGETS: Family = family(
    "bitbucket_zdu_exporter_targets",
    Gauge,
    Exporter,
    &[],
    "Number of Bitbucket targets configured.",
);
/// `bitbucket_zdu_exporter_config_last_reload_successful`.
pub const EXPORTER_RELOAD_SUCCESSFUL: Family = family(
    "bitbucket_zdu_exporter_config_last_reload_successful",
    Gauge,
    Exporter,
    &[],
    "1 when the last configuration reload succeeded.",
);
/// `bitbucket_zdu_exporter_config_last_reload_success_timestamp_seconds`.
pub const EXPORTER_RELOAD_SUCCESS_TIMESTAMP: Family = family(
    "bitbucket_zdu_exporter_config_last_reload_success_timestamp_seconds",
    Gauge,
    Exporter,
    &[],
    "Unix time of the last successful configuration (re)load.",
);
/// `bitbucket_zdu_exporter_state_file_errors_total`.
pub const EXPORTER_STATE_FILE_ERRORS: Family = family(
    "bitbucket_zdu_exporter_state_file_errors",
    Counter,
    Exporter,
    &[],
    "Failed reads and writes of the --state.file (0 without one); logged once per distinct error.",
);
/// `bitbucket_zdu_exporter_web_config_refused_total`.
pub const EXPORTER_WEB_CONFIG_REFUSED: Family = family(
    "bitbucket_zdu_exporter_web_config_refused",
    Counter,
    Exporter,
    &[],
    "Re-reads of --web.config.file refused while serving because they would turn off the authentication it started with (the previous settings are kept); each distinct content counted once.",
);

// --- process --------------------------------------------------------------------------------

/// `process_cpu_seconds_total`.
pub const PROCESS_CPU: Family = family(
    "process_cpu_seconds",
    Counter,
    Process,
    &[],
    "Total user and system CPU time spent in seconds.",
);
/// `process_resident_memory_bytes`.
pub const PROCESS_RESIDENT_MEMORY: Family = family(
    "process_resident_memory_bytes",
    Gauge,
    Process,
    &[],
    "Resident memory size in bytes.",
);
/// `process_virtual_memory_bytes`.
pub const PROCESS_VIRTUAL_MEMORY: Family = family(
    "process_virtual_memory_bytes",
    Gauge,
    Process,
    &[],
    "Virtual memory size in bytes.",
);
/// `process_start_time_seconds`.
pub const PROCESS_START_TIME: Family = family(
    "process_start_time_seconds",
    Gauge,
    Process,
    &[],
    "Start time of the process since unix epoch in seconds.",
);
/// `process_open_fds`.
pub const PROCESS_OPEN_FDS: Family = family(
    "process_open_fds",
    Gauge,
    Process,
    &[],
    "Number of open file descriptors.",
);
/// `process_max_fds`.
pub const PROCESS_MAX_FDS: Family = family(
    "process_max_fds",
    Gauge,
    Process,
    &[],
    "Maximum number of open file descriptors.",
);

// --- cluster --------------------------------------------------------------------------------

/// `bitbucket_zdu_up`.
pub const UP: Family = family(
    "bitbucket_zdu_up",
    Gauge,
    Cluster,
    &[],
    polled!("1 when the last poll of /rest/zdu/cluster succeeded and is fresh, else 0"),
);
/// `bitbucket_zdu_last_error_info`.
pub const LAST_ERROR_INFO: Family = family(
    "bitbucket_zdu_last_error_info",
    Gauge,
    Cluster,
    &["reason"],
    "Why bitbucket_zdu_up is 0: the failure reason of the last /rest/zdu/cluster poll, or stale.",
);
/// `bitbucket_zdu_upgrade_mode_enabled`.
pub const UPGRADE_MODE_ENABLED: Family = family(
    "bitbucket_zdu_upgrade_mode_enabled",
    Gauge,
    Cluster,
    &[],
    polled!("1 when rolling-upgrade mode is enabled"),
);
/// `bitbucket_zdu_cluster_state`.
pub const CLUSTER_STATE: Family = family(
    "bitbucket_zdu_cluster_state",
    Gauge,
    Cluster,
    &["state"],
    polled!("1 for the cluster's current ZDU state, 0 for the others"),
);
/// `bitbucket_zdu_cluster_state_entered_timestamp_seconds`.
pub const CLUSTER_STATE_ENTERED: Family = family(
    "bitbucket_zdu_cluster_state_entered_timestamp_seconds",
    Gauge,
    Cluster,
    &[],
    polled!("Unix time the cluster entered its current state, as first seen by the exporter (kept across restarts with --state.file)"),
);
/// `bitbucket_zdu_node_state_last_change_timestamp_seconds`.
pub const NODE_STATE_LAST_CHANGE: Family = family(
    "bitbucket_zdu_node_state_last_change_timestamp_seconds",
    Gauge,
    Cluster,
    &[],
    polled!("Unix time a node entry of the cluster last changed state, appeared or disappeared, as first seen by the exporter (kept across restarts with --state.file): the upgrade's last progress"),
);
/// `bitbucket_zdu_original_version_info`.
pub const ORIGINAL_VERSION_INFO: Family = family(
    "bitbucket_zdu_original_version_info",
    Gauge,
    Cluster,
    &["version"],
    polled!("The version the cluster ran when upgrade mode was enabled"),
);

// --- nodes ----------------------------------------------------------------------------------

/// `bitbucket_zdu_nodes`.
pub const NODES: Family = family(
    "bitbucket_zdu_nodes",
    Gauge,
    Nodes,
    &["state"],
    polled!("Number of cluster node entries per node state, ghost entries included"),
);
/// `bitbucket_zdu_node_info`.
pub const NODE_INFO: Family = family(
    "bitbucket_zdu_node_info",
    Gauge,
    Nodes,
    &[
        "node_id",
        "node_name",
        "address",
        "version",
        "build_number",
        "local",
    ],
    polled!("One series per cluster node entry with its address, version and build number"),
);
/// `bitbucket_zdu_node_state`.
pub const NODE_STATE: Family = family(
    "bitbucket_zdu_node_state",
    Gauge,
    Nodes,
    &["node_id", "node_name", "state"],
    polled!("1 for the node's current state, 0 for the others"),
);
/// `bitbucket_zdu_node_state_entered_timestamp_seconds`.
pub const NODE_STATE_ENTERED: Family = family(
    "bitbucket_zdu_node_state_entered_timestamp_seconds",
    Gauge,
    Nodes,
    NODE,
    polled!("Unix time the node entered its current state, as first seen by the exporter"),
);
/// `bitbucket_zdu_node_ghost`.
pub const NODE_GHOST: Family = family(
    "bitbucket_zdu_node_ghost",
    Gauge,
    Nodes,
    NODE,
    polled!("1 when this OFFLINE entry is a ghost: a live node with the same name exists (a pod back with a new IP)"),
);
/// `bitbucket_zdu_node_name_offline_since_timestamp_seconds`.
pub const NODE_NAME_OFFLINE_SINCE: Family = family(
    "bitbucket_zdu_node_name_offline_since_timestamp_seconds",
    Gauge,
    Nodes,
    &["node_name"],
    polled!("Per node name with entries but no live (not OFFLINE) one: Unix time since which no live entry with that name has been seen, as first seen by the exporter (kept across restarts with --state.file); absent while the name has a live entry"),
);
/// `bitbucket_zdu_node_active_tasks`.
pub const NODE_ACTIVE_TASKS: Family = only(
    ZDU_PLUGIN,
    family(
        "bitbucket_zdu_node_active_tasks",
        Gauge,
        Nodes,
        NODE,
        polled!("Active tasks on the node (absent when Bitbucket reports null)"),
    ),
);
/// `bitbucket_zdu_node_active_users`.
pub const NODE_ACTIVE_USERS: Family = only(
    ZDU_PLUGIN,
    family(
        "bitbucket_zdu_node_active_users",
        Gauge,
        Nodes,
        NODE,
        polled!("Active users on the node (absent when Bitbucket reports null)"),
    ),
);
/// `bitbucket_zdu_distinct_versions`.
pub const DISTINCT_VERSIONS: Family = family(
    "bitbucket_zdu_distinct_versions",
    Gauge,
    Nodes,
    &[],
    polled!("Distinct product versions among nodes that are not OFFLINE"),
);
/// `bitbucket_zdu_nodes_upgraded`.
pub const NODES_UPGRADED: Family = family(
    "bitbucket_zdu_nodes_upgraded",
    Gauge,
    Nodes,
    &[],
    polled!("Nodes not OFFLINE known to run a version other than the original version (a null version is not upgraded; 0 without an original version)"),
);
/// `bitbucket_zdu_ghost_nodes`.
pub const GHOST_NODES: Family = family(
    "bitbucket_zdu_ghost_nodes",
    Gauge,
    Nodes,
    &[],
    polled!("OFFLINE node entries whose name matches a live node"),
);
/// `confluence_zdu_has_finalization_tasks` (Confluence only).
pub const HAS_FINALIZATION_TASKS: Family = only(
    &[Product::Confluence],
    family(
        "bitbucket_zdu_has_finalization_tasks",
        Gauge,
        Nodes,
        &[],
        polled!(
            "Confluence's hasFinalizationTasks: 1 while finalization tasks are pending or failed"
        ),
    ),
);
/// `confluence_zdu_node_finalization_errors` (Confluence only).
pub const NODE_FINALIZATION_ERRORS: Family = only(
    &[Product::Confluence],
    family(
        "bitbucket_zdu_node_finalization_errors",
        Gauge,
        Nodes,
        NODE,
        polled!("Errors of the node's last finalization run (Confluence's finalization.errors)"),
    ),
);
/// `jira_zdu_node_alive` (Jira only).
pub const NODE_ALIVE: Family = only(
    &[Product::Jira],
    family(
    "bitbucket_zdu_node_alive",
    Gauge,
    Nodes,
    NODE,
    polled!("Jira's node heartbeat: 1 when alive, 0 without heartbeat (an ACTIVE node at 0 is 'no heartbeat')"),
),
);

// --- responder ------------------------------------------------------------------------------

/// `bitbucket_zdu_responder_info`.
pub const RESPONDER_INFO: Family = only(
    ZDU_PLUGIN,
    family(
        "bitbucket_zdu_responder_info",
        Gauge,
        Responder,
        &["node_id", "node_name", "version"],
        polled!(
            "The node that answered GET /rest/zdu/state (a sidecar on localhost sees its own node)"
        ),
    ),
);
/// `bitbucket_zdu_responder_state`.
pub const RESPONDER_STATE: Family = only(
    ZDU_PLUGIN,
    family(
        "bitbucket_zdu_responder_state",
        Gauge,
        Responder,
        &["state"],
        polled!("1 for the state of the node that answered GET /rest/zdu/state"),
    ),
);

// --- polls ----------------------------------------------------------------------------------

/// `bitbucket_zdu_cluster_state_transitions_total`.
pub const CLUSTER_STATE_TRANSITIONS: Family = family(
    "bitbucket_zdu_cluster_state_transitions",
    Counter,
    Polls,
    &["from", "to"],
    polled!("Cluster state changes seen by the exporter, every pair of known states present from the start (0) so increase() sees each first transition"),
);
/// `bitbucket_zdu_unknown_enum_values_total`.
pub const UNKNOWN_ENUM_VALUES: Family = family(
    "bitbucket_zdu_unknown_enum_values",
    Counter,
    Polls,
    &["field"],
    "State values this exporter version does not know, seen in polls (exported verbatim, sanitised).",
);
/// `bitbucket_zdu_poll_interval_seconds`.
pub const POLL_INTERVAL: Family = family(
    "bitbucket_zdu_poll_interval_seconds",
    Gauge,
    Polls,
    &[],
    "The configured interval between polls of this target (--poll.interval or the target's poll_interval); backoff after failures can make the real gap longer.",
);
/// `bitbucket_zdu_poll_duration_seconds`.
pub const POLL_DURATION: Family = family(
    "bitbucket_zdu_poll_duration_seconds",
    Gauge,
    Polls,
    &["endpoint"],
    "Duration of the last poll of each ZDU endpoint.",
);
/// `bitbucket_zdu_polls_total`.
pub const POLLS: Family = family(
    "bitbucket_zdu_polls",
    Counter,
    Polls,
    &["endpoint"],
    "Polls of each ZDU endpoint.",
);
/// `bitbucket_zdu_poll_errors_total`.
pub const POLL_ERRORS: Family = family(
    "bitbucket_zdu_poll_errors",
    Counter,
    Polls,
    &["endpoint", "reason"],
    "Failed polls of each ZDU endpoint by reason.",
);
/// `bitbucket_zdu_last_poll_success_timestamp_seconds`.
pub const LAST_POLL_SUCCESS: Family = family(
    "bitbucket_zdu_last_poll_success_timestamp_seconds",
    Gauge,
    Polls,
    &["endpoint"],
    "Unix time of the last successful poll of each ZDU endpoint.",
);

// --- upgrade --------------------------------------------------------------------------------

/// `bitbucket_zdu_upgrade_started_timestamp_seconds`.
pub const UPGRADE_STARTED: Family = family(
    "bitbucket_zdu_upgrade_started_timestamp_seconds",
    Gauge,
    Upgrade,
    &[],
    polled!("Unix time the upgrade in flight started (upgrade mode first seen on; kept across restarts with --state.file); absent without an upgrade in flight"),
);
/// `bitbucket_zdu_upgrade_nodes`.
pub const UPGRADE_NODES: Family = family(
    "bitbucket_zdu_upgrade_nodes",
    Gauge,
    Upgrade,
    &[],
    polled!("Nodes taking part in the upgrade in flight: the node names when it started, so ghost entries do not count"),
);
/// `bitbucket_zdu_upgrade_nodes_done`.
pub const UPGRADE_NODES_DONE: Family = family(
    "bitbucket_zdu_upgrade_nodes_done",
    Gauge,
    Upgrade,
    &[],
    polled!("Nodes of the upgrade in flight seen live on a version other than the original"),
);
/// `bitbucket_zdu_upgrade_estimated_completion_timestamp_seconds`.
pub const UPGRADE_ETA: Family = family(
    "bitbucket_zdu_upgrade_estimated_completion_timestamp_seconds",
    Gauge,
    Upgrade,
    &[],
    polled!("Estimated unix time the last node of the upgrade in flight is done, from the mean time per node done since the upgrade started; absent until one node is done (nodes already done when the exporter first saw the upgrade give no rate)"),
);
/// `bitbucket_zdu_upgrades_total`.
pub const UPGRADES: Family = family(
    "bitbucket_zdu_upgrades",
    Counter,
    Upgrade,
    &["result"],
    polled!("Finished rolling upgrades by result (completed, cancelled, failed_finalization; every result present from 0), kept across restarts with --state.file"),
);
/// `bitbucket_zdu_last_upgrade_duration_seconds`.
pub const LAST_UPGRADE_DURATION: Family = family(
    "bitbucket_zdu_last_upgrade_duration_seconds",
    Gauge,
    Upgrade,
    &[],
    polled!("Duration of the last finished upgrade, from upgrade mode on to off; absent before the first"),
);
/// `bitbucket_zdu_node_upgrade_duration_seconds`.
pub const NODE_UPGRADE_DURATION: Family = family(
    "bitbucket_zdu_node_upgrade_duration_seconds",
    Histogram,
    Upgrade,
    &[],
    polled!("Per-node upgrade time, from drain start (or the first upgrade phase seen) to ACTIVE on the new version, each node counted once per upgrade"),
);

/// Every family, in the order `/metrics` emits them for a single target (the exporter's own
/// families first, then the target's).
pub const ALL: &[Family] = &[
    EXPORTER_BUILD_INFO,
    EXPORTER_TARGETS,
    EXPORTER_RELOAD_SUCCESSFUL,
    EXPORTER_RELOAD_SUCCESS_TIMESTAMP,
    EXPORTER_STATE_FILE_ERRORS,
    EXPORTER_WEB_CONFIG_REFUSED,
    PROCESS_CPU,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_VIRTUAL_MEMORY,
    PROCESS_START_TIME,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    UP,
    LAST_ERROR_INFO,
    UPGRADE_MODE_ENABLED,
    CLUSTER_STATE,
    CLUSTER_STATE_ENTERED,
    NODE_STATE_LAST_CHANGE,
    ORIGINAL_VERSION_INFO,
    NODES,
    NODE_INFO,
    NODE_STATE,
    NODE_STATE_ENTERED,
    NODE_GHOST,
    NODE_NAME_OFFLINE_SINCE,
    NODE_ACTIVE_TASKS,
    NODE_ACTIVE_USERS,
    DISTINCT_VERSIONS,
    NODES_UPGRADED,
    GHOST_NODES,
    HAS_FINALIZATION_TASKS,
    NODE_FINALIZATION_ERRORS,
    NODE_ALIVE,
    RESPONDER_INFO,
    RESPONDER_STATE,
    CLUSTER_STATE_TRANSITIONS,
    UNKNOWN_ENUM_VALUES,
    POLL_INTERVAL,
    POLL_DURATION,
    POLLS,
    POLL_ERRORS,
    LAST_POLL_SUCCESS,
    UPGRADE_STARTED,
    UPGRADE_NODES,
    UPGRADE_NODES_DONE,
    UPGRADE_ETA,
    UPGRADES,
    LAST_UPGRADE_DURATION,
    NODE_UPGRADE_DURATION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_groups_are_contiguous() {
        let mut names: Vec<String> = ALL.iter().map(Family::sample_name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "duplicate family names");
        // Each group is emitted by one function, so its families stand together.
        let mut seen: Vec<Group> = Vec::new();
        for f in ALL {
            if seen.last() != Some(&f.group) {
                assert!(!seen.contains(&f.group), "{} splits group {:?}", f, f.group);
                seen.push(f.group);
            }
        }
    }

    #[test]
    fn counters_do_not_carry_total_in_the_family_name() {
        for f in ALL {
            if f.kind == Kind::Counter {
                assert!(!f.name.ends_with("_total"), "{}", f.name);
            }
        }
    }
}

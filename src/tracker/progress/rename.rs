//! A node that comes back under another name (re-provisioned with a new host name) during
//! an upgrade: its old name keeps only an OFFLINE entry (a ghost) and the new name is not
//! one the upgrade tracks, so it was never counted done and the ETA froze in the past. A
//! tracked name without a live entry is paired, in order, with a live name the upgrade does
//! not track, and followed under the new name from then on.

use crate::model::Node;

use super::Upgrade;

/// Renames the tracked nodes of `u` that have no live entry in `groups` (name → entries)
/// after the live names `u` does not track, pairing them in order: first the nodes that took
/// part ([`super::NodeProgress::took_part`]), then the others, so a stale OFFLINE entry never
/// takes the new name of a node that is upgrading. A cluster that only grew (no tracked name
/// without a live entry) is left alone.
pub(super) fn follow_renames(u: &mut Upgrade, groups: &[(String, Vec<&Node>)]) {
    let live = |name: &str| {
        groups
            .iter()
            .any(|(n, entries)| n == name && entries.iter().any(|e| !e.is_offline()))
    };
    let mut untracked = groups
        .iter()
        .filter(|(name, _)| live(name) && !u.nodes.iter().any(|np| np.name == *name))
        .map(|(name, _)| name.clone())
        .collect::<Vec<_>>()
        .into_iter();
    for took_part in [true, false] {
        for np in u.nodes.iter_mut().filter(|np| np.took_part() == took_part) {
            if live(&np.name) {
                continue;
            }
            match untracked.next() {
                Some(new) => np.name = new,
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Cluster;
    use crate::tracker::progress::Progress;

    fn cluster(nodes: &[(&str, &str, &str)]) -> Cluster {
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(name, state, version)| {
                serde_json::json!({"id": format!("{name}-{state}"), "name": name, "state": state, "version": version})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "upgradeModeEnabled": true, "state": "MIXED", "originalVersion": "1.0", "nodes": nodes
        }))
        .unwrap()
    }

    /// Also seen (issue 18): a renamed node was never counted done, so the ETA froze.
    #[test]
    fn a_renamed_node_is_counted_done_and_the_eta_moves_on() {
        let mut p = Progress::default();
        p.observe(
            &cluster(&[
                ("a", "ACTIVE", "1.0"),
                ("b", "ACTIVE", "1.0"),
                ("c", "ACTIVE", "1.0"),
            ]),
            100.0,
        );
        p.observe(
            &cluster(&[
                ("a", "ACTIVE", "2.0"),
                ("b", "ACTIVE", "1.0"),
                ("c", "ACTIVE", "1.0"),
            ]),
            200.0,
        );
        let renamed = [
            ("a", "ACTIVE", "2.0"),
            ("b", "OFFLINE", ""),
            ("b-new", "ACTIVE", "2.0"),
            ("c", "ACTIVE", "1.0"),
        ];
        p.observe(&cluster(&renamed), 300.0);
        let u = p.current.as_ref().unwrap();
        assert_eq!((u.nodes_done(), u.nodes_total()), (2, 3));
        assert!(u
            .nodes
            .iter()
            .any(|n| n.name == "b-new" && n.done_at == Some(300.0)));
        let eta = u.estimated_completion().unwrap();
        assert!(eta > 300.0, "the ETA is not frozen in the past: {eta}");
    }

    /// A node that only joined (no tracked node lost its live entry) is not a rename.
    #[test]
    fn a_node_that_joins_is_not_taken_for_a_rename() {
        let mut p = Progress::default();
        p.observe(&cluster(&[("a", "ACTIVE", "1.0")]), 100.0);
        p.observe(
            &cluster(&[("a", "ACTIVE", "1.0"), ("z", "ACTIVE", "2.0")]),
            200.0,
        );
        let u = p.current.as_ref().unwrap();
        assert_eq!(u.nodes[0].name, "a");
        assert_eq!(u.nodes_done(), 0);
    }
}

//! The polls group: state transitions and unknown values seen across polls, and the counters
//! and timings of each polled endpoint. Emitted whether or not the data is fresh.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    CLUSTER_STATE_TRANSITIONS, LAST_POLL_SUCCESS, POLLS, POLL_DURATION, POLL_ERRORS, POLL_INTERVAL,
    UNKNOWN_ENUM_VALUES,
};
use super::{counters, gauges, sanitize_state, unlabelled, Sample};
use crate::model::{ClusterState, Product};
use crate::snapshot::TargetSnapshot;

/// The `field` values of `bitbucket_zdu_unknown_enum_values_total`, all present from the start.
const UNKNOWN_FIELDS: [&str; 3] = ["cluster_state", "node_state", "responder_state"];

/// The `(from, to)` samples of `bitbucket_zdu_cluster_state_transitions_total`: every ordered
/// pair of distinct known cluster states (in [`ClusterState::KNOWN`] order, 0 until seen), so
/// each first transition is an increase from 0 that `increase()` can see, then pairs with an
/// unknown state as seen (every unknown state is `OTHER`, so their pairs are summed).
pub fn transition_samples(
    seen: &std::collections::BTreeMap<(String, String), u64>,
) -> Vec<((String, String), u64)> {
    let mut out: Vec<((String, String), u64)> = Vec::new();
    for from in ClusterState::KNOWN {
        for to in ClusterState::KNOWN {
            if from != to {
                out.push(((from.as_str().to_string(), to.as_str().to_string()), 0));
            }
        }
    }
    for ((from, to), n) in seen {
        // Known names as they are, every unknown one as the one bucket (a state file written
        // by an older version may still hold raw unknown names).
        let label = |s: &String| match ClusterState::parse(s) {
            st if st.is_unknown() => sanitize_state(s),
            _ => s.clone(),
        };
        let key = (label(from), label(to));
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += n,
            None => out.push((key, *n)),
        }
    }
    out
}

/// Writes the polls group; `interval` is the target's configured poll interval.
pub fn encode(
    enc: &mut DescriptorEncoder<'_>,
    product: Product,
    snap: &TargetSnapshot,
    interval: std::time::Duration,
) -> fmt::Result {
    let transitions: Vec<Sample<u64>> = transition_samples(&snap.transitions)
        .into_iter()
        .map(|((from, to), n)| (vec![from, to], n))
        .collect();
    counters(
        enc,
        CLUSTER_STATE_TRANSITIONS.describe(product),
        &transitions,
    )?;
    let unknown: Vec<Sample<u64>> = UNKNOWN_FIELDS
        .iter()
        .map(|f| {
            let n = snap.unknown_values.get(f).copied().unwrap_or(0);
            (vec![f.to_string()], n)
        })
        .collect();
    counters(enc, UNKNOWN_ENUM_VALUES.describe(product), &unknown)?;

    let ep = |ep: crate::snapshot::Endpoint| vec![ep.as_str().to_string()];
    let durations: Vec<Sample<f64>> = snap
        .endpoints
        .iter()
        .filter_map(|(e, s)| s.last_duration_seconds.map(|d| (ep(e), d)))
        .collect();
    gauges(
        enc,
        POLL_INTERVAL.describe(product),
        &unlabelled(interval.as_secs_f64()),
    )?;
    gauges(enc, POLL_DURATION.describe(product), &durations)?;
    let polls: Vec<Sample<u64>> = snap
        .endpoints
        .iter()
        .map(|(e, s)| (ep(e), s.polls_total))
        .collect();
    counters(enc, POLLS.describe(product), &polls)?;
    let errors: Vec<Sample<u64>> = snap
        .endpoints
        .iter()
        .flat_map(|(e, s)| {
            s.errors_total
                .iter()
                .map(move |(reason, n)| (vec![e.as_str().to_string(), reason.to_string()], *n))
        })
        .collect();
    counters(enc, POLL_ERRORS.describe(product), &errors)?;
    let success: Vec<Sample<f64>> = snap
        .endpoints
        .iter()
        .filter_map(|(e, s)| s.last_success_timestamp.map(|t| (ep(e), t)))
        .collect();
    gauges(enc, LAST_POLL_SUCCESS.describe(product), &success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_known_transition_is_present_at_zero_and_seen_ones_count() {
        let none = transition_samples(&BTreeMap::new());
        let n = ClusterState::KNOWN.len();
        assert_eq!(none.len(), n * (n - 1));
        assert!(none.iter().all(|(_, v)| *v == 0));
        assert!(none.iter().all(|((f, t), _)| f != t));
        let mut seen = BTreeMap::new();
        seen.insert(("STABLE".to_string(), "READY_TO_UPGRADE".to_string()), 2);
        seen.insert(("MIXED".to_string(), "new state".to_string()), 1);
        seen.insert(("MIXED".to_string(), "NEW-STATE".to_string()), 1);
        let got = transition_samples(&seen);
        assert_eq!(got.len(), n * (n - 1) + 1);
        let get = |f: &str, t: &str| {
            got.iter()
                .find(|((a, b), _)| a == f && b == t)
                .map(|(_, v)| *v)
        };
        assert_eq!(get("STABLE", "READY_TO_UPGRADE"), Some(2));
        assert_eq!(get("MIXED", "STABLE"), Some(0));
        assert_eq!(get("MIXED", "OTHER"), Some(2));
    }
}

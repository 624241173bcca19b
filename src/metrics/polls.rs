//! The polls group: state transitions and unknown values seen across polls, and the counters
//! and timings of each polled endpoint. Emitted whether or not the data is fresh.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    CLUSTER_STATE_TRANSITIONS, LAST_POLL_SUCCESS, POLLS, POLL_DURATION, POLL_ERRORS,
    UNKNOWN_ENUM_VALUES,
};
use super::{counters, gauges, sanitize_state, Sample};
use crate::poller::TargetSnapshot;

/// The `field` values of `bitbucket_zdu_unknown_enum_values_total`, all present from the start.
const UNKNOWN_FIELDS: [&str; 3] = ["cluster_state", "node_state", "responder_state"];

/// Writes the polls group.
pub fn encode(enc: &mut DescriptorEncoder<'_>, snap: &TargetSnapshot) -> fmt::Result {
    let transitions: Vec<Sample<u64>> = snap
        .transitions
        .iter()
        .map(|((from, to), n)| (vec![sanitize_state(from), sanitize_state(to)], *n))
        .collect();
    counters(enc, &CLUSTER_STATE_TRANSITIONS, &transitions)?;
    let unknown: Vec<Sample<u64>> = UNKNOWN_FIELDS
        .iter()
        .map(|f| {
            let n = snap.unknown_values.get(f).copied().unwrap_or(0);
            (vec![f.to_string()], n)
        })
        .collect();
    counters(enc, &UNKNOWN_ENUM_VALUES, &unknown)?;

    let ep = |ep: crate::poller::Endpoint| vec![ep.as_str().to_string()];
    let durations: Vec<Sample<f64>> = snap
        .endpoints
        .iter()
        .filter_map(|(e, s)| s.last_duration_seconds.map(|d| (ep(e), d)))
        .collect();
    gauges(enc, &POLL_DURATION, &durations)?;
    let polls: Vec<Sample<u64>> = snap
        .endpoints
        .iter()
        .map(|(e, s)| (ep(e), s.polls_total))
        .collect();
    counters(enc, &POLLS, &polls)?;
    let errors: Vec<Sample<u64>> = snap
        .endpoints
        .iter()
        .flat_map(|(e, s)| {
            s.errors_total
                .iter()
                .map(move |(reason, n)| (vec![e.as_str().to_string(), reason.to_string()], *n))
        })
        .collect();
    counters(enc, &POLL_ERRORS, &errors)?;
    let success: Vec<Sample<f64>> = snap
        .endpoints
        .iter()
        .filter_map(|(e, s)| s.last_success_timestamp.map(|t| (ep(e), t)))
        .collect();
    gauges(enc, &LAST_POLL_SUCCESS, &success)
}

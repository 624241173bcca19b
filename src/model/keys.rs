//! Series identity that cannot collide: node keys unique within an answer whatever the
//! upstream sends, every composite label value within [`MAX_LABEL_BYTES`], and the one
//! label value every unknown enum value is exported as.

use std::collections::HashSet;

use super::MAX_LABEL_BYTES;

/// The `state` label of every enum value this version does not know (cluster, node and
/// responder states, and either end of a cluster state transition). One bucket: a hostile
/// upstream cannot add series by inventing states, and no unknown value can be spelled
/// like a known one (`"stable"` is not `STABLE`). The raw values are counted in
/// `bitbucket_zdu_unknown_enum_values_total`.
pub const OTHER_STATE: &str = "OTHER";

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to the label cap ([`MAX_LABEL_BYTES`]).
pub fn cap_label(mut s: String) -> String {
    let keep = truncate(&s, MAX_LABEL_BYTES).len();
    s.truncate(keep);
    s
}

/// Makes `raw` keys (in the answer's order) unique and within the label cap: the first
/// occurrence of a key keeps it; a repeat gets the lowest `#N` (N ≥ 2) that no entry of
/// the answer uses, so ids `x`, `x`, `x#2` become `x`, `x#3`, `x#2`.
pub fn unique_keys(raw: Vec<String>) -> Vec<String> {
    let raw: Vec<String> = raw.into_iter().map(cap_label).collect();
    let all: HashSet<&str> = raw.iter().map(String::as_str).collect();
    let mut emitted: HashSet<String> = HashSet::with_capacity(raw.len());
    let mut out = Vec::with_capacity(raw.len());
    for key in &raw {
        if emitted.insert(key.clone()) {
            out.push(key.clone());
            continue;
        }
        let mut n = 2usize;
        let unique = loop {
            let suffix = format!("#{n}");
            let candidate = format!("{}{suffix}", truncate(key, MAX_LABEL_BYTES - suffix.len()));
            if !all.contains(candidate.as_str()) && !emitted.contains(&candidate) {
                break candidate;
            }
            n += 1;
        };
        emitted.insert(unique.clone());
        out.push(unique);
    }
    out
}

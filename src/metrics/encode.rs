//! The encoding helpers every group uses: samples, gauge and counter families of the
//! catalogue, one-hot `state` families and label sanitising.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::catalogue::Kind;
use super::family::{Descriptor, Family};

/// One sample: the label values (in the order of [`Family::labels`]) and the value.
pub type Sample<T> = (Vec<String>, T);

/// A sample without labels.
pub fn unlabelled<T>(v: T) -> Vec<Sample<T>> {
    vec![(Vec::new(), v)]
}

/// 1.0 for true, 0.0 for false.
pub fn bit(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

fn label_set(family: &Family, values: &[String]) -> Vec<(&'static str, String)> {
    debug_assert_eq!(
        family.labels.len(),
        values.len(),
        "{}: label values do not match the catalogue's label names",
        family.name
    );
    family
        .labels
        .iter()
        .copied()
        .zip(values.iter().cloned())
        .collect()
}

/// Writes one family as `descriptor` describes it, each sample's value made a metric by
/// `metric`; nothing when there are no samples or no descriptor (the target's product lacks
/// the family: [`Family::describe`]).
fn encode_family<T: Copy, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    descriptor: Option<Descriptor<'_>>,
    samples: &[Sample<T>],
    metric: impl Fn(T) -> M,
) -> fmt::Result {
    let Some(d) = descriptor.filter(|_| !samples.is_empty()) else {
        return Ok(());
    };
    let family = d.family;
    let mut m = enc.encode_descriptor(&d.name, &d.help, None, family.kind.metric_type())?;
    for (values, v) in samples {
        metric(*v).encode(m.encode_family(&label_set(family, values))?)?;
    }
    Ok(())
}

/// Writes one gauge family of the catalogue, as [`Family::describe`] (a target's family) or
/// [`Family::own`] (the exporter's) gives it; nothing when there are no samples or the
/// target's product lacks the family.
pub fn gauges<'f>(
    enc: &mut DescriptorEncoder<'_>,
    descriptor: impl Into<Option<Descriptor<'f>>>,
    samples: &[Sample<f64>],
) -> fmt::Result {
    let descriptor = descriptor.into();
    if let Some(d) = &descriptor {
        debug_assert_eq!(d.family.kind, Kind::Gauge, "{}", d.family.name);
    }
    encode_family(enc, descriptor, samples, ConstGauge::new)
}

/// Writes one counter family of the catalogue (the encoder adds `_total`), described as for
/// [`gauges`]; nothing when there are no samples or the target's product lacks the family.
pub fn counters<'f, N: EncodeCounterValue + Copy>(
    enc: &mut DescriptorEncoder<'_>,
    descriptor: impl Into<Option<Descriptor<'f>>>,
    samples: &[Sample<N>],
) -> fmt::Result {
    let descriptor = descriptor.into();
    if let Some(d) = &descriptor {
        debug_assert_eq!(d.family.kind, Kind::Counter, "{}", d.family.name);
    }
    encode_family(enc, descriptor, samples, ConstCounter::new)
}

/// A `state`-labelled one-hot family: one sample per known value (1 for `current`, 0 for
/// the others), then `OTHER` at 1 for an unknown `current`.
pub fn one_hot<S: PartialEq>(
    known: &[S],
    current: Option<&S>,
    as_str: fn(&S) -> &str,
    is_unknown: fn(&S) -> bool,
) -> Vec<Sample<f64>> {
    let mut out: Vec<Sample<f64>> = known
        .iter()
        .map(|s| (vec![as_str(s).to_string()], bit(current == Some(s))))
        .collect();
    if let Some(raw) = current.filter(|c| is_unknown(c)) {
        out.push((vec![sanitize_state(as_str(raw))], 1.0));
    }
    out
}

/// The label value of an unknown enum value: always
/// [`OTHER_STATE`](crate::model::keys::OTHER_STATE), one bucket kept apart from the known
/// names and bounded whatever the upstream invents (the raw value is not a label).
pub fn sanitize_state(_raw: &str) -> String {
    crate::model::keys::OTHER_STATE.to_string()
}

/// A `state`-labelled one-hot family over a product's state names (in the product's order):
/// one sample per name (1 for `current`, 0 for the others), then, when `current` is not one
/// of them, `OTHER` at 1 for a value (sanitised) and, if `null_label` is given, that label at
/// 1 for a null state.
pub fn named_one_hot(
    known: &[&str],
    current: Option<&str>,
    null_label: Option<&str>,
) -> Vec<Sample<f64>> {
    let mut out: Vec<Sample<f64>> = known
        .iter()
        .map(|s| (vec![s.to_string()], bit(current == Some(*s))))
        .collect();
    let extra = match current {
        Some(raw) if !known.contains(&raw) => Some(sanitize_state(raw)),
        Some(_) => None,
        None => null_label.map(str::to_string),
    };
    out.extend(extra.map(|label| (vec![label], 1.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::named_one_hot;

    #[test]
    fn named_one_hot_marks_the_current_name_an_other_value_or_null() {
        let known = ["A", "B"];
        let labels = |v: Vec<super::Sample<f64>>| -> Vec<(String, f64)> {
            v.into_iter().map(|(l, x)| (l.concat(), x)).collect()
        };
        let s = |l: &str, x: f64| (l.to_string(), x);
        assert_eq!(
            labels(named_one_hot(&known, Some("B"), Some("UNKNOWN"))),
            [s("A", 0.0), s("B", 1.0)]
        );
        assert_eq!(
            labels(named_one_hot(&known, Some("NEW"), None)),
            [s("A", 0.0), s("B", 0.0), s("OTHER", 1.0)]
        );
        assert_eq!(
            labels(named_one_hot(&known, None, Some("UNKNOWN"))),
            [s("A", 0.0), s("B", 0.0), s("UNKNOWN", 1.0)]
        );
        assert_eq!(labels(named_one_hot(&known, None, None)).len(), 2);
    }
}

//! The encoding helpers every group uses: samples, gauge and counter families of the
//! catalogue, one-hot `state` families and label sanitising.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::catalogue::{Family, Kind};
use crate::model::{NodeState, Product};

thread_local! {
    /// The product whose prefix the target families get while one target is encoded.
    static PRODUCT: std::cell::Cell<Product> = const { std::cell::Cell::new(Product::Bitbucket) };
}

/// While alive, the catalogue's `bitbucket_zdu_*` target families are written under the
/// product's prefix (`confluence_zdu_*`, `jira_zdu_*`); the exporter's own
/// `bitbucket_zdu_exporter_*` families never are. Encoding is synchronous, so the scope
/// covers exactly one target's families; dropping it restores the previous product.
#[derive(Debug)]
pub struct ProductScope(Product);

/// Starts a [`ProductScope`] for `product`.
pub fn product_scope(product: Product) -> ProductScope {
    ProductScope(PRODUCT.with(|p| p.replace(product)))
}

impl Drop for ProductScope {
    fn drop(&mut self) {
        PRODUCT.with(|p| p.set(self.0));
    }
}

/// The product whose target is being encoded (Bitbucket outside a [`ProductScope`]).
pub fn current_product() -> Product {
    PRODUCT.with(std::cell::Cell::get)
}

/// The name `family` is written under for the product in scope.
pub fn family_name(family: &Family) -> std::borrow::Cow<'static, str> {
    match PRODUCT.with(std::cell::Cell::get) {
        Product::Bitbucket => family.name.into(),
        product => family.name_for(product).into(),
    }
}

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

/// Writes one family of the catalogue, each sample's value made a metric by `metric`;
/// nothing when there are no samples.
fn encode_family<T: Copy, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: &[Sample<T>],
    metric: impl Fn(T) -> M,
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let name = family_name(family);
    let mut m = enc.encode_descriptor(&name, family.help, None, family.kind.metric_type())?;
    for (values, v) in samples {
        metric(*v).encode(m.encode_family(&label_set(family, values))?)?;
    }
    Ok(())
}

/// Writes one gauge family of the catalogue; nothing when there are no samples.
pub fn gauges(
    enc: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: &[Sample<f64>],
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Gauge, "{}", family.name);
    encode_family(enc, family, samples, ConstGauge::new)
}

/// Writes one counter family of the catalogue (the encoder adds `_total`); nothing when there
/// are no samples.
pub fn counters<N: EncodeCounterValue + Copy>(
    enc: &mut DescriptorEncoder<'_>,
    family: &Family,
    samples: &[Sample<N>],
) -> fmt::Result {
    debug_assert_eq!(family.kind, Kind::Counter, "{}", family.name);
    encode_family(enc, family, samples, ConstCounter::new)
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

/// The `state` label of a node state this version does not list in [`NodeState::KNOWN`]:
/// an unknown value (sanitised) or `UNKNOWN` for null; `None` for a known state.
pub(crate) fn extra_state_label(state: &Option<NodeState>) -> Option<String> {
    match state {
        Some(NodeState::Unknown(raw)) => Some(sanitize_state(raw)),
        None => Some("UNKNOWN".to_string()),
        Some(_) => None,
    }
}

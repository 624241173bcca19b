//! The shape of a metric family: its type ([`Kind`]), the group that encodes it ([`Group`])
//! and its descriptor ([`Family`]). The catalogue of every family is [`super::catalogue`].

use std::borrow::Cow;
use std::fmt;

use prometheus_client::metrics::MetricType;

use crate::model::Product;

/// The type of a family, as written in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down (also used for `_info` families).
    Gauge,
    /// A monotonically increasing count; its samples carry `_total`.
    Counter,
    /// A classic histogram: `_bucket` (with `le`), `_sum` and `_count` samples.
    Histogram,
}

impl Kind {
    /// The name in the text format's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }

    /// The `prometheus-client` type.
    pub fn metric_type(self) -> MetricType {
        match self {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
            Kind::Histogram => MetricType::Histogram,
        }
    }
}

/// Which encoding function emits a family (one function, one module per group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The cluster as a whole: up, last error, upgrade mode, cluster state, versions.
    Cluster,
    /// Node entries and the figures derived from them.
    Nodes,
    /// The node that answered `/rest/zdu/state`.
    Responder,
    /// Poll bookkeeping: counters and timings of the two endpoints, transitions, unknown values.
    Polls,
    /// The rolling upgrade in flight and the finished ones (see `crate::tracker::progress`).
    Upgrade,
    /// The exporter itself: build, targets, reloads.
    Exporter,
    /// The standard `process_*` metrics.
    Process,
}

impl Group {
    /// The group's name in `docs/metrics.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Cluster => "cluster",
            Group::Nodes => "nodes",
            Group::Responder => "responder",
            Group::Polls => "polls",
            Group::Upgrade => "upgrade",
            Group::Exporter => "exporter",
            Group::Process => "process",
        }
    }
}

/// The descriptor of one metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The family name; for a counter without `_total` (the encoder adds it).
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The label names the exporter puts on every sample, in the order emitted.
    pub labels: &'static [&'static str],
    /// The encoding group.
    pub group: Group,
    /// The catalogue's product table: the products whose targets have this family (every
    /// product for most target families, one for a product's own data, none for the
    /// exporter's own `bitbucket_zdu_exporter_*` and `process_*` families).
    pub products: &'static [Product],
}

/// One family as written: its catalogue entry with the name and `# HELP` text it gets for
/// one product's target (or, for the exporter's own families, as catalogued).
#[derive(Debug, Clone)]
pub struct Descriptor<'f> {
    /// The catalogue entry (type, label names).
    pub family: &'f Family,
    /// The family name as written (a counter without `_total`).
    pub name: Cow<'static, str>,
    /// The `# HELP` text as written.
    pub help: Cow<'static, str>,
}

impl Family {
    /// The family as written for a target of `product`: the `bitbucket_zdu` prefix becomes
    /// the product's (`confluence_zdu_up`) and the help names the product and its endpoints
    /// ([`Family::help_for`]); `None` when the product table says the product lacks it.
    /// Bitbucket's descriptor is the catalogue's entry unchanged.
    pub fn describe(&self, product: Product) -> Option<Descriptor<'_>> {
        if !self.products.contains(&product) {
            return None;
        }
        Some(Descriptor {
            family: self,
            name: self.name_for(product),
            help: self.help_for(product),
        })
    }

    /// One of the exporter's own families (`bitbucket_zdu_exporter_*`, `process_*`) as
    /// written: named and described as catalogued, whatever the targets' products.
    pub fn own(&self) -> Descriptor<'_> {
        debug_assert!(self.products.is_empty(), "{} is a target family", self.name);
        Descriptor {
            family: self,
            name: Cow::Borrowed(self.name),
            help: Cow::Borrowed(self.help),
        }
    }

    /// The family's name for a target of `product`: the `bitbucket_zdu` prefix becomes the
    /// product's; the exporter's own families keep theirs.
    pub fn name_for(&self, product: Product) -> Cow<'static, str> {
        match self.name.strip_prefix("bitbucket_zdu") {
            Some(rest) if !self.products.is_empty() && product != Product::Bitbucket => {
                Cow::Owned(format!("{}{rest}", product.metric_prefix()))
            }
            _ => Cow::Borrowed(self.name),
        }
    }

    /// The family's help for a target of `product`. The catalogue writes Bitbucket's text;
    /// another product's names the product instead of Bitbucket, its own family names
    /// instead of `bitbucket_zdu_*`, and its own endpoints instead of `/rest/zdu/...`
    /// ([`Product::cluster_endpoints`], [`Product::state_endpoint`]). The exporter's own
    /// families keep their text.
    pub fn help_for(&self, product: Product) -> Cow<'static, str> {
        if product == Product::Bitbucket || self.products.is_empty() {
            return Cow::Borrowed(self.help);
        }
        Cow::Owned(
            self.help
                .replace("bitbucket_zdu", product.metric_prefix())
                .replace("Bitbucket", product.title())
                .replace("/rest/zdu/cluster", product.cluster_endpoints())
                .replace("/rest/zdu/state", product.state_endpoint()),
        )
    }

    /// The sample name as written in PromQL: counters with `_total`; a histogram by its
    /// family name (its samples add `_bucket`, `_sum` and `_count`).
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Gauge | Kind::Histogram => self.name.to_string(),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sample_name())
    }
}

/// A [`Family`] from its parts (a `const` constructor for the table below): a target family
/// exists for every product until [`only`] says otherwise (the catalogue's
/// product table); the exporter's own for none.
pub(super) const fn family(
    name: &'static str,
    kind: Kind,
    group: Group,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    let products: &'static [Product] = match group {
        Group::Exporter | Group::Process => &[],
        _ => &Product::ALL,
    };
    Family {
        name,
        kind,
        help,
        labels,
        group,
        products,
    }
}

/// `f` for `products` alone: the product table's entry of a family that not every product has.
pub(super) const fn only(products: &'static [Product], f: Family) -> Family {
    Family { products, ..f }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::catalogue::{ALL, LAST_ERROR_INFO, NODE_ALIVE, RESPONDER_STATE, UP};

    #[test]
    fn each_product_gets_its_own_names_and_help_and_bitbucket_the_catalogue_s() {
        for f in ALL {
            if f.products.is_empty() {
                let own = f.own();
                assert_eq!((own.name.as_ref(), own.help.as_ref()), (f.name, f.help));
                assert!(Product::ALL.iter().all(|p| f.describe(*p).is_none()));
                continue;
            }
            for p in Product::ALL {
                let Some(d) = f.describe(p) else {
                    assert!(!f.products.contains(&p), "{f}");
                    continue;
                };
                if p == Product::Bitbucket {
                    assert!(matches!(d.name, std::borrow::Cow::Borrowed(_)), "{f}");
                    assert_eq!((d.name.as_ref(), d.help.as_ref()), (f.name, f.help));
                    continue;
                }
                assert!(d.name.starts_with(p.metric_prefix()), "{}", d.name);
                assert!(!d.help.contains("Bitbucket"), "{p}: {}", d.help);
                assert!(!d.help.contains("bitbucket_zdu"), "{p}: {}", d.help);
            }
        }
        let jira_up = UP.describe(Product::Jira).unwrap().help;
        assert!(jira_up.contains("/rest/api/2/cluster/nodes"), "{jira_up}");
        assert!(jira_up.contains("Jira's"), "{jira_up}");
        let wiki_error = LAST_ERROR_INFO.describe(Product::Confluence).unwrap().help;
        assert!(
            wiki_error.starts_with("Why confluence_zdu_up is 0"),
            "{wiki_error}"
        );
        assert!(RESPONDER_STATE.describe(Product::Jira).is_none());
        assert!(NODE_ALIVE.describe(Product::Bitbucket).is_none());
    }
}

//! The shape of a metric family: its type ([`Kind`]), the group that encodes it ([`Group`])
//! and its descriptor ([`Family`]). The catalogue of every family is [`super::catalogue`].

use std::fmt;

use prometheus_client::metrics::MetricType;

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
}

impl Family {
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

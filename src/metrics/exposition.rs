//! Exposition formats and encoding a registry in one of them.

use prometheus_client::registry::Registry;

/// OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Classic text format content type.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, enum_map::Enum)]
pub enum Format {
    /// OpenMetrics 1.0.0 ([`OPENMETRICS`]).
    OpenMetrics,
    /// Prometheus text format 0.0.4 ([`TEXT_004`]).
    Text004,
}

impl Format {
    /// Both formats.
    pub const ALL: [Format; 2] = [Format::OpenMetrics, Format::Text004];

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Text004 => TEXT_004,
        }
    }
}

/// Encodes a registry in the chosen format: a complete exposition (OpenMetrics ends with
/// `# EOF`).
pub fn render(registry: &Registry, format: Format) -> String {
    let mut out = render_families(registry, format);
    if format == Format::OpenMetrics {
        out.push_str(EOF);
    }
    out
}

/// The OpenMetrics end marker.
pub const EOF: &str = "# EOF\n";

/// Encodes a registry's families only, without the OpenMetrics `# EOF` marker, so that
/// several such pieces can be joined into one exposition (they are what one registry holding
/// all their collectors, in that order, would encode).
pub fn render_families(registry: &Registry, format: Format) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let res = match format {
        Format::OpenMetrics => {
            prometheus_client::encoding::text::encode_registry(&mut out, registry)
        }
        Format::Text004 => prometheus_client::encoding::prometheus_text::encode(&mut out, registry),
    };
    if res.is_err() {
        tracing::error!("encoding metrics failed");
    }
    out
}

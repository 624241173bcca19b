//! Logging set-up: `--log.level` and `--log.format` (logfmt, as the Go exporters print, or
//! JSON), to stderr.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. Dependencies are held to `warn` so that their debug output
/// (which may show request headers) never reaches the log.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = EnvFilter::new(format!(
        "warn,bitbucket_zdu_exporter={lvl},bitbucket_zdu_exporter::client={lvl}",
        lvl = level.directive()
    ));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    let _ = result;
}

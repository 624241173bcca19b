//! The command-line flags of the exporter (clap types only, no validation): what the user
//! typed, with environment fallbacks. `validate` turns them into a [`super::Config`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::sys::duration::PromDuration;

/// Default port, `:9879`.
pub const DEFAULT_LISTEN: &str = ":9879";
/// Env variable holding a Basic-auth password (flag mode only).
pub const ENV_PASSWORD: &str = "BITBUCKET_ZDU_PASSWORD";
/// Env variable holding a Bearer token (flag mode only).
pub const ENV_TOKEN: &str = "BITBUCKET_ZDU_TOKEN";
/// Request timeout when `--bitbucket.timeout` is not given (clamped to the poll interval).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// `key=value` pairs, as the Go exporters print.
    #[default]
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogLevel {
    /// Everything, including each poll.
    Debug,
    /// Start-up, reloads, state changes.
    #[default]
    Info,
    /// Problems only.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Logging flags: accepted by the exporter and by every subcommand.
#[derive(Debug, Clone, Copy, Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", env = "BITBUCKET_ZDU_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Output format of log messages.
    #[arg(long = "log.format", env = "BITBUCKET_ZDU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,
}

/// The exporter's flags, each with an environment fallback (the "low-level" arguments: parsed,
/// not yet validated; [`Config::from_args`](super::Config::from_args) turns them into a `Config`).
#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// Base URL of Bitbucket, with its context path if any (https://host/bitbucket).
    #[arg(long = "bitbucket.url", env = "BITBUCKET_ZDU_URL", value_name = "URL")]
    pub bitbucket_url: Option<String>,
    /// Sysadmin user for HTTP Basic auth (password from --bitbucket.password-file or BITBUCKET_ZDU_PASSWORD).
    #[arg(
        long = "bitbucket.username",
        env = "BITBUCKET_ZDU_USERNAME",
        value_name = "USER"
    )]
    pub bitbucket_username: Option<String>,
    /// File holding the password; re-read when it changes.
    #[arg(
        long = "bitbucket.password-file",
        env = "BITBUCKET_ZDU_PASSWORD_FILE",
        value_name = "PATH"
    )]
    pub bitbucket_password_file: Option<PathBuf>,
    /// File holding a Bearer token (instead of Basic auth); re-read when it changes.
    #[arg(
        long = "bitbucket.token-file",
        env = "BITBUCKET_ZDU_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub bitbucket_token_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust instead of the system roots.
    #[arg(
        long = "bitbucket.ca-file",
        env = "BITBUCKET_ZDU_CA_FILE",
        value_name = "PATH"
    )]
    pub bitbucket_ca_file: Option<PathBuf>,
    /// Do not verify Bitbucket's TLS certificate (testing only).
    #[arg(
        long = "bitbucket.insecure-skip-verify",
        env = "BITBUCKET_ZDU_INSECURE_SKIP_VERIFY"
    )]
    pub bitbucket_insecure_skip_verify: bool,
    /// Timeout of one request to Bitbucket, body included (default: 10s, or the poll interval
    /// if that is shorter; an explicit timeout longer than the interval is refused).
    #[arg(
        long = "bitbucket.timeout",
        env = "BITBUCKET_ZDU_TIMEOUT",
        value_name = "DURATION"
    )]
    pub bitbucket_timeout: Option<PromDuration>,
    /// Most node entries accepted in one /rest/zdu/cluster answer; a bigger answer fails the
    /// poll (reason too_many_nodes) and none of it is kept.
    #[arg(
        long = "bitbucket.max-nodes",
        env = "BITBUCKET_ZDU_MAX_NODES",
        default_value_t = crate::model::DEFAULT_MAX_NODES,
        value_name = "N"
    )]
    pub bitbucket_max_nodes: usize,
    /// The product at --bitbucket.url: bitbucket, confluence or jira (a config file sets
    /// `product:` per target instead).
    #[arg(
        long = "bitbucket.product",
        visible_alias = "upstream.product",
        env = "BITBUCKET_ZDU_PRODUCT",
        value_enum,
        default_value_t = crate::model::Product::Bitbucket,
        value_name = "PRODUCT"
    )]
    pub bitbucket_product: crate::model::Product,
    /// How often to poll Bitbucket.
    #[arg(
        long = "poll.interval",
        env = "BITBUCKET_ZDU_POLL_INTERVAL",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub poll_interval: PromDuration,
    /// Data older than this is not served (default: 3 x poll interval).
    #[arg(
        long = "poll.max-age",
        env = "BITBUCKET_ZDU_POLL_MAX_AGE",
        value_name = "DURATION"
    )]
    pub poll_max_age: Option<PromDuration>,
    /// File where state-entered times and transition counts survive a restart.
    #[arg(
        long = "state.file",
        env = "BITBUCKET_ZDU_STATE_FILE",
        value_name = "PATH"
    )]
    pub state_file: Option<PathBuf>,
    /// Address to listen on; repeat for several.
    #[arg(
        long = "web.listen-address",
        env = "BITBUCKET_ZDU_WEB_LISTEN_ADDRESS",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub web_listen_address: Vec<String>,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "BITBUCKET_ZDU_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub web_telemetry_path: String,
    /// Exporter-toolkit web configuration file (TLS, basic auth, headers).
    #[arg(
        long = "web.config.file",
        env = "BITBUCKET_ZDU_WEB_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Maximum number of requests served at once; more get 503.
    #[arg(
        long = "web.max-requests",
        env = "BITBUCKET_ZDU_WEB_MAX_REQUESTS",
        default_value_t = 64
    )]
    pub web_max_requests: usize,
    /// YAML file naming one or more targets (instead of --bitbucket.url).
    #[arg(
        long = "config.file",
        env = "BITBUCKET_ZDU_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub config_file: Option<PathBuf>,
    /// Validate the configuration and exit 0 (valid) or 1 (invalid, with the reason).
    #[arg(long = "config.check")]
    pub config_check: bool,
}

//! Configuration, in three modules as flags flow through them:
//!
//! - [`flags`]: the clap types (what the user typed, with environment fallbacks);
//! - [`file`](mod@file): the YAML schema of `--config.file` (a list of targets);
//! - `validate`: the only code that makes a [`Config`] or a [`TargetConfig`].
//!
//! The fields of `Config` and `TargetConfig` are private and they have no public literal, so
//! a value of either has been validated: by [`Config::from_args`] at start-up,
//! `--config.check` or reload, or by the builders ([`Config::builder`],
//! [`TargetConfig::builder`]) that `demo` and tests use, which run the same checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::model::Product;
use crate::secret::{SecretError, SecretSource};

pub mod file;
pub mod flags;
mod validate;

pub use file::parse_targets_yaml;
pub use flags::{
    ExporterArgs, LogArgs, LogFormat, LogLevel, DEFAULT_LISTEN, DEFAULT_TIMEOUT, ENV_PASSWORD,
    ENV_TOKEN,
};
pub use validate::parse_listen_address;

use validate::{Defaults, TargetSpec, Timeout};

/// A configuration problem, always naming the flag or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config.file` cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `--config.file` is not valid YAML of the expected shape.
    #[error("config file {path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the parser found, from its kind, location and the schema only (never a value
        /// or key from the file), see [`crate::secret::yaml_error_message`].
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{key}: {message}")]
    Invalid {
        /// The flag or file key at fault.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A secret (password or token) cannot be read.
    #[error("{key}: {source}")]
    Secret {
        /// The flag, variable or key that names the secret.
        key: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// Neither `--bitbucket.url` nor `--config.file` was given.
    #[error("no target: set --bitbucket.url (or BITBUCKET_ZDU_URL) or --config.file, or try the `demo` subcommand")]
    NoTarget,
}

/// How the exporter authenticates to Bitbucket.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// No credentials (only useful against the simulator or a proxy that adds them).
    None,
    /// HTTP Basic with a sysadmin user: the method that works on the ZDU endpoints.
    Basic {
        /// The user (non-empty, no `:`).
        username: String,
        /// Where the password is read from.
        password: Arc<SecretSource>,
    },
    /// `Authorization: Bearer` (Confluence/Jira PATs, OAuth2 set-ups).
    Bearer {
        /// Where the token is read from.
        token: Arc<SecretSource>,
    },
}

impl AuthConfig {
    /// A description without the secret: `basic (user zdu, password from file /x)`.
    pub fn describe(&self) -> String {
        match self {
            AuthConfig::None => "none".into(),
            AuthConfig::Basic { username, password } => {
                format!(
                    "basic (user {username}, password from {})",
                    password.describe()
                )
            }
            AuthConfig::Bearer { token } => format!("bearer (token from {})", token.describe()),
        }
    }
}

/// TLS settings towards Bitbucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM bundle of CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (testing only).
    pub insecure_skip_verify: bool,
}

/// One validated Bitbucket target.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    name: String,
    base_url: reqwest::Url,
    auth: AuthConfig,
    tls: TlsConfig,
    timeout: Duration,
    poll_interval: Duration,
    max_age: Duration,
    max_nodes: usize,
    product: Product,
}

impl TargetConfig {
    /// A builder for a target named `name` at `url`, with the flag defaults (30s interval,
    /// 10s timeout clamped to the interval, max age 3 x interval, no auth, system roots).
    pub fn builder(name: impl Into<String>, url: impl Into<String>) -> TargetBuilder {
        TargetBuilder {
            name: name.into(),
            url: url.into(),
            auth: AuthConfig::None,
            tls: TlsConfig::default(),
            timeout: None,
            poll_interval: Duration::from_secs(30),
            max_age: None,
            max_nodes: crate::model::DEFAULT_MAX_NODES,
            product: Product::Bitbucket,
        }
    }

    /// Unique name, used by `/probe?target=`, in logs and as the state-file key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Base URL without trailing slash; may contain a context path.
    pub fn base_url(&self) -> &reqwest::Url {
        &self.base_url
    }

    /// How to authenticate.
    pub fn auth(&self) -> &AuthConfig {
        &self.auth
    }

    /// TLS settings towards Bitbucket.
    pub fn tls(&self) -> &TlsConfig {
        &self.tls
    }

    /// Timeout of one request, body included; never longer than the poll interval.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time between polls.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Data older than this is not served.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Most node entries accepted in one `/cluster` answer; more fail the poll
    /// (`too_many_nodes`).
    pub fn max_nodes(&self) -> usize {
        self.max_nodes
    }

    /// The product this target runs (`bitbucket` unless configured): decides the upstream
    /// paths, how answers are read and the prefix of the target's metric families.
    pub fn product(&self) -> Product {
        self.product
    }

    /// `<base>/rest/zdu/<path>`.
    pub fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/rest/zdu/{path}"));
        url
    }

    /// `<base>/<path>` for a path from the site root (Jira's `rest/api/2/cluster/nodes`).
    pub fn site_endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    /// The URL without credentials, for display.
    pub fn display_url(&self) -> String {
        self.base_url.to_string()
    }

    /// Whether a reload with `other` can keep this target's poller as it is.
    pub fn same_settings(&self, other: &TargetConfig) -> bool {
        self.base_url == other.base_url
            && self.auth.describe() == other.auth.describe()
            && self.tls == other.tls
            && self.timeout == other.timeout
            && self.poll_interval == other.poll_interval
            && self.max_age == other.max_age
            && self.max_nodes == other.max_nodes
            && self.product == other.product
    }
}

/// Builds a [`TargetConfig`] through the same validation as flags and files.
#[derive(Debug, Clone)]
pub struct TargetBuilder {
    name: String,
    url: String,
    auth: AuthConfig,
    tls: TlsConfig,
    timeout: Option<Duration>,
    poll_interval: Duration,
    max_age: Option<Duration>,
    max_nodes: usize,
    product: Product,
}

impl TargetBuilder {
    /// Authentication (default: none).
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// TLS settings (default: system roots, verified).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// An explicit request timeout: refused if longer than the poll interval.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Poll interval (default 30s, at least 100ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Maximum age of served data (default 3 x poll interval).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Most node entries per answer (default 1000, at least 1).
    pub fn max_nodes(mut self, max_nodes: usize) -> Self {
        self.max_nodes = max_nodes;
        self
    }

    /// The product (default: Bitbucket).
    pub fn product(mut self, product: Product) -> Self {
        self.product = product;
        self
    }

    /// Validates and builds the target.
    pub fn build(self) -> Result<TargetConfig, ConfigError> {
        validate::validate_auth(&self.auth)?;
        validate::build_target(TargetSpec {
            name: self.name,
            url: &self.url,
            url_key: "url",
            auth: self.auth,
            tls: self.tls,
            tls_key: "tls.ca_file",
            timeout: self
                .timeout
                .map_or(Timeout::Default(DEFAULT_TIMEOUT), Timeout::Explicit),
            timeout_key: "timeout",
            poll_interval: self.poll_interval,
            max_age: self.max_age,
            max_nodes: self.max_nodes,
            max_nodes_key: "max_nodes",
            product: self.product,
        })
    }
}

/// The exporter's own web settings (listeners and paths; TLS and auth live in the
/// exporter-toolkit style `--web.config.file`, see [`crate::web`]).
#[derive(Debug, Clone)]
pub struct WebSettings {
    listen_addresses: Vec<SocketAddr>,
    telemetry_path: String,
    config_file: Option<PathBuf>,
    max_requests: usize,
}

impl WebSettings {
    /// The addresses to listen on.
    pub fn listen_addresses(&self) -> &[SocketAddr] {
        &self.listen_addresses
    }

    /// The path of the metrics page, `/metrics` by default.
    pub fn telemetry_path(&self) -> &str {
        &self.telemetry_path
    }

    /// The `--web.config.file`, if any.
    pub fn web_config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// Requests served at once; more get 503.
    pub fn max_requests(&self) -> usize {
        self.max_requests
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    targets: Vec<TargetConfig>,
    web: WebSettings,
    state_file: Option<PathBuf>,
}

impl Config {
    /// Validates flags (and the config file they name) into a `Config`.
    ///
    /// The "high-level" step: picks where targets come from (flags or `--config.file`),
    /// fills the flag defaults in, and hands every value to `validate`.
    pub fn from_args(args: &ExporterArgs, env: &dyn Env) -> Result<Config, ConfigError> {
        let listen = if args.web_listen_address.is_empty() {
            vec![DEFAULT_LISTEN.to_string()]
        } else {
            args.web_listen_address.clone()
        };
        let listen_addresses = listen
            .iter()
            .map(|a| parse_listen_address(a))
            .collect::<Result<Vec<_>, _>>()?;
        let defaults = Defaults {
            timeout: args.bitbucket_timeout.map(|d| d.0),
            poll_interval: args.poll_interval.0,
            max_age: args.poll_max_age.map(|d| d.0),
            max_nodes: args.bitbucket_max_nodes,
        };
        let targets = match (&args.config_file, &args.bitbucket_url) {
            (Some(_), Some(_)) => {
                return Err(validate::invalid(
                    "--config.file",
                    "give either --config.file or --bitbucket.url, not both",
                ))
            }
            (Some(path), None) => file::load(path, &defaults)?,
            (None, Some(url)) => vec![validate::target_from_flags(args, url, env, &defaults)?],
            (None, None) => return Err(ConfigError::NoTarget),
        };
        let web = WebSettings {
            listen_addresses,
            telemetry_path: args.web_telemetry_path.clone(),
            config_file: args.web_config_file.clone(),
            max_requests: args.web_max_requests,
        };
        validate::config(targets, web, args.state_file.clone())
    }

    /// A builder around already validated `targets`, with the flag defaults for the rest
    /// (no listener, `/metrics`, 64 requests at once, no state file, no web config file).
    pub fn builder(targets: Vec<TargetConfig>) -> ConfigBuilder {
        ConfigBuilder {
            targets,
            web: WebSettings {
                listen_addresses: Vec::new(),
                telemetry_path: "/metrics".into(),
                config_file: None,
                max_requests: 64,
            },
            state_file: None,
        }
    }

    /// The targets, in configuration order; never empty, names unique.
    pub fn targets(&self) -> &[TargetConfig] {
        &self.targets
    }

    /// The exporter's web settings.
    pub fn web(&self) -> &WebSettings {
        &self.web
    }

    /// The `--state.file`, if any.
    pub fn state_file(&self) -> Option<&Path> {
        self.state_file.as_deref()
    }
}

/// Builds a [`Config`] through the same validation as flags (for `demo` and tests).
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    targets: Vec<TargetConfig>,
    web: WebSettings,
    state_file: Option<PathBuf>,
}

impl ConfigBuilder {
    /// Addresses to listen on.
    pub fn listen_addresses(mut self, addresses: Vec<SocketAddr>) -> Self {
        self.web.listen_addresses = addresses;
        self
    }

    /// The metrics path.
    pub fn telemetry_path(mut self, path: impl Into<String>) -> Self {
        self.web.telemetry_path = path.into();
        self
    }

    /// Requests served at once.
    pub fn max_requests(mut self, n: usize) -> Self {
        self.web.max_requests = n;
        self
    }

    /// The state file.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Validates and builds the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        validate::config(self.targets, self.web, self.state_file)
    }
}

/// Process environment as the config sees it (injectable for tests).
pub trait Env {
    /// The value of variable `name`, if set (and valid Unicode).
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

#[cfg(test)]
mod tests;

//! Configuration: raw flags, environment and the optional YAML file are parsed once into a
//! validated [`Config`]. Everything downstream takes a `Config` (or a [`TargetConfig`]), so
//! an invalid value can only ever be reported here, at start-up, `--config.check` or reload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::duration::PromDuration;
use crate::secret::{SecretError, SecretSource};

/// Default port, `:9879`.
pub const DEFAULT_LISTEN: &str = ":9879";
/// Env variable holding a Basic-auth password (flag mode only).
pub const ENV_PASSWORD: &str = "BITBUCKET_ZDU_PASSWORD";
/// Env variable holding a Bearer token (flag mode only).
pub const ENV_TOKEN: &str = "BITBUCKET_ZDU_TOKEN";

/// Command line of the binary.
#[derive(Debug, Parser)]
#[command(
    name = "bitbucket-zdu-exporter",
    version = crate::build::VERSION_LONG,
    about = "Prometheus exporter for Bitbucket Data Center rolling upgrades (ZDU).",
    long_about = "Prometheus exporter for Bitbucket Data Center rolling upgrades (ZDU).\n\n\
        Without a subcommand it polls GET /rest/zdu/cluster and /rest/zdu/state of one or more \
        Bitbucket clusters and serves the results on /metrics. Secrets are read from files or \
        from the BITBUCKET_ZDU_PASSWORD / BITBUCKET_ZDU_TOKEN environment variables, never \
        from flags."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub exporter: ExporterArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a simulated Bitbucket ZDU API on loopback (no Bitbucket needed).
    Simulate(crate::simulator::SimulateArgs),
    /// Run the simulator and the exporter together in one process and print the URL to open.
    Demo(crate::demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(crate::cli_docs::CompletionsArgs),
    /// Print the man page (roff) to stdout, or write one page per command with --dir.
    Man(crate::cli_docs::ManArgs),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

/// Log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
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

/// The exporter's flags, each with an environment fallback.
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
    /// Timeout of one request to Bitbucket, body included.
    #[arg(
        long = "bitbucket.timeout",
        env = "BITBUCKET_ZDU_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub bitbucket_timeout: PromDuration,
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
    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", env = "BITBUCKET_ZDU_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Output format of log messages.
    #[arg(long = "log.format", env = "BITBUCKET_ZDU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,
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

/// A configuration problem, always naming the flag or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{key}: {source}")]
    Secret {
        key: String,
        #[source]
        source: SecretError,
    },
    #[error("no target: set --bitbucket.url (or BITBUCKET_ZDU_URL) or --config.file, or try the `demo` subcommand")]
    NoTarget,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// How the exporter authenticates to Bitbucket.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// No credentials (only useful against the simulator or a proxy that adds them).
    None,
    /// HTTP Basic with a sysadmin user: the method that works on the ZDU endpoints.
    Basic {
        username: String,
        password: Arc<SecretSource>,
    },
    /// `Authorization: Bearer` (Confluence/Jira PATs, OAuth2 set-ups).
    Bearer { token: Arc<SecretSource> },
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
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// One validated Bitbucket target.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Unique name, used by `/probe?target=` and in logs.
    pub name: String,
    /// Base URL without trailing slash; may contain a context path.
    pub base_url: reqwest::Url,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub max_age: Duration,
}

impl TargetConfig {
    /// `<base>/rest/zdu/<path>`.
    pub fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/rest/zdu/{path}"));
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
    }
}

/// Exporter web settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen_addresses: Vec<SocketAddr>,
    pub telemetry_path: String,
    pub config_file: Option<PathBuf>,
    pub max_requests: usize,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Vec<TargetConfig>,
    pub web: WebConfig,
    pub state_file: Option<PathBuf>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// Where the targets came from, for reloads.
    pub config_file: Option<PathBuf>,
}

// ---- the YAML file -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    targets: Vec<FileTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    name: String,
    url: String,
    #[serde(default)]
    auth: Option<FileAuth>,
    #[serde(default)]
    tls: Option<FileTls>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    poll_interval: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// Process environment as the config sees it (injectable for tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Validates flags (and the config file they name) into a `Config`.
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
        let telemetry_path = args.web_telemetry_path.clone();
        if !telemetry_path.starts_with('/') || telemetry_path.len() < 2 {
            return Err(invalid(
                "--web.telemetry-path",
                format!("{telemetry_path:?} must start with / and not be / alone"),
            ));
        }
        if ["/probe", "/-/healthy", "/-/ready", "/-/reload"].contains(&telemetry_path.as_str()) {
            return Err(invalid(
                "--web.telemetry-path",
                format!("{telemetry_path} is a reserved path"),
            ));
        }
        if args.web_max_requests == 0 {
            return Err(invalid("--web.max-requests", "must be at least 1"));
        }
        let defaults = Defaults {
            timeout: args.bitbucket_timeout.0,
            poll_interval: args.poll_interval.0,
            max_age: args.poll_max_age.map(|d| d.0),
        };
        let targets = match (&args.config_file, &args.bitbucket_url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "--config.file",
                    "give either --config.file or --bitbucket.url, not both",
                ))
            }
            (Some(path), None) => load_targets_file(path, &defaults)?,
            (None, Some(url)) => vec![target_from_flags(args, url, env, &defaults)?],
            (None, None) => return Err(ConfigError::NoTarget),
        };
        Ok(Config {
            targets,
            web: WebConfig {
                listen_addresses,
                telemetry_path,
                config_file: args.web_config_file.clone(),
                max_requests: args.web_max_requests,
            },
            state_file: args.state_file.clone(),
            log_level: args.log_level,
            log_format: args.log_format,
            config_file: args.config_file.clone(),
        })
    }
}

struct Defaults {
    timeout: Duration,
    poll_interval: Duration,
    max_age: Option<Duration>,
}

/// Parses `host:port`, `:port` (all interfaces) or `[v6]:port`.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, ConfigError> {
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if let Some(rest) = s.strip_prefix("localhost:") {
        format!("127.0.0.1:{rest}")
    } else {
        s.to_string()
    };
    full.parse().map_err(|_| {
        invalid(
            "--web.listen-address",
            format!("{s:?} is not an address like :9879, 127.0.0.1:9879 or [::1]:9879"),
        )
    })
}

fn target_from_flags(
    args: &ExporterArgs,
    url: &str,
    env: &dyn Env,
    d: &Defaults,
) -> Result<TargetConfig, ConfigError> {
    let password = match (&args.bitbucket_password_file, env.var(ENV_PASSWORD)) {
        (Some(path), _) => Some(secret_file("--bitbucket.password-file", path)?),
        (None, Some(v)) => Some(secret_env(ENV_PASSWORD, v)?),
        (None, None) => None,
    };
    let token = match (&args.bitbucket_token_file, env.var(ENV_TOKEN)) {
        (Some(path), _) => Some(secret_file("--bitbucket.token-file", path)?),
        (None, Some(v)) => Some(secret_env(ENV_TOKEN, v)?),
        (None, None) => None,
    };
    let auth = build_auth(
        "--bitbucket",
        args.bitbucket_username.clone(),
        password,
        token,
    )?;
    build_target(
        "default".into(),
        url,
        "--bitbucket.url",
        auth,
        TlsConfig {
            ca_file: args.bitbucket_ca_file.clone(),
            insecure_skip_verify: args.bitbucket_insecure_skip_verify,
        },
        "--bitbucket.ca-file",
        d.timeout,
        d.poll_interval,
        d.max_age,
    )
}

fn secret_file(key: &str, path: &Path) -> Result<Arc<SecretSource>, ConfigError> {
    SecretSource::file(path)
        .map(Arc::new)
        .map_err(|source| ConfigError::Secret {
            key: key.to_string(),
            source,
        })
}

fn secret_env(var: &str, value: String) -> Result<Arc<SecretSource>, ConfigError> {
    SecretSource::env(var, value)
        .map(Arc::new)
        .map_err(|source| ConfigError::Secret {
            key: var.to_string(),
            source,
        })
}

fn build_auth(
    key: &str,
    username: Option<String>,
    password: Option<Arc<SecretSource>>,
    token: Option<Arc<SecretSource>>,
) -> Result<AuthConfig, ConfigError> {
    match (username, password, token) {
        (None, None, None) => Ok(AuthConfig::None),
        (Some(u), Some(p), None) => {
            if u.is_empty() || u.contains(':') {
                return Err(invalid(
                    format!("{key}.username"),
                    "must be non-empty and contain no ':'",
                ));
            }
            Ok(AuthConfig::Basic {
                username: u,
                password: p,
            })
        }
        (None, None, Some(t)) => Ok(AuthConfig::Bearer { token: t }),
        (Some(_), None, None) => Err(invalid(
            format!("{key}.username"),
            "a username needs a password (password file, or BITBUCKET_ZDU_PASSWORD)",
        )),
        (None, Some(_), None) => Err(invalid(
            format!("{key}.password"),
            "a password needs a username",
        )),
        (_, _, Some(_)) => Err(invalid(
            format!("{key}.token"),
            "use either a token or a username and password, not both",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_target(
    name: String,
    url: &str,
    url_key: &str,
    auth: AuthConfig,
    tls: TlsConfig,
    tls_key: &str,
    timeout: Duration,
    poll_interval: Duration,
    max_age: Option<Duration>,
) -> Result<TargetConfig, ConfigError> {
    let base_url = validate_url(url_key, url)?;
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| invalid(tls_key, format!("cannot read {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            invalid(
                tls_key,
                format!("{}: not a PEM certificate bundle: {e}", ca.display()),
            )
        })?;
        if certs.is_empty() {
            return Err(invalid(
                tls_key,
                format!("{} holds no PEM certificate", ca.display()),
            ));
        }
    }
    if timeout < Duration::from_millis(10) {
        return Err(invalid("timeout", "must be at least 10ms"));
    }
    if poll_interval < Duration::from_millis(100) {
        return Err(invalid("poll_interval", "must be at least 100ms"));
    }
    if timeout > poll_interval {
        return Err(invalid(
            "timeout",
            format!(
                "{} is longer than the poll interval {}",
                crate::duration::format_duration(timeout),
                crate::duration::format_duration(poll_interval)
            ),
        ));
    }
    let max_age = max_age.unwrap_or(poll_interval * 3);
    if max_age < poll_interval {
        return Err(invalid(
            "max_age",
            "must not be shorter than the poll interval",
        ));
    }
    Ok(TargetConfig {
        name,
        base_url,
        auth,
        tls,
        timeout,
        poll_interval,
        max_age,
    })
}

fn validate_url(key: &str, raw: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| invalid(key, format!("{raw:?} is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(key, "scheme must be http or https"));
    }
    if url.host_str().is_none() {
        return Err(invalid(key, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            key,
            "must not contain credentials; use a username with a password file instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(key, "must not have a query or fragment"));
    }
    let path = url.path().trim_end_matches('/').to_string();
    if path.ends_with("/rest/zdu") || path.contains("/rest/") {
        return Err(invalid(
            key,
            "give Bitbucket's base URL (with its context path, e.g. https://host/bitbucket), not an API path",
        ));
    }
    let mut url = url;
    url.set_path(if path.is_empty() { "/" } else { &path });
    Ok(url)
}

fn load_targets_file(path: &Path, d: &Defaults) -> Result<Vec<TargetConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_targets_yaml(&text, path, d.timeout, d.poll_interval, d.max_age)
}

/// Parses the YAML of `--config.file`. Paths in it are relative to the file's folder.
pub fn parse_targets_yaml(
    text: &str,
    path: &Path,
    default_timeout: Duration,
    default_interval: Duration,
    default_max_age: Option<Duration>,
) -> Result<Vec<TargetConfig>, ConfigError> {
    // The message never quotes values from the file: it may be a secret given by mistake.
    let file: FileConfig = serde_norway::from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_path_buf(),
        message: crate::secret::hide_quoted_values(&e.to_string()),
    })?;
    if file.targets.is_empty() {
        return Err(invalid("targets", "the list is empty"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let mut out: Vec<TargetConfig> = Vec::new();
    for (i, t) in file.targets.into_iter().enumerate() {
        let key = format!("targets[{i}]");
        if t.name.is_empty()
            || !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                format!("{key}.name"),
                format!(
                    "{:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                    t.name
                ),
            ));
        }
        if out.iter().any(|o| o.name == t.name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("{:?} is used twice", t.name),
            ));
        }
        let auth = match t.auth {
            None => AuthConfig::None,
            Some(a) => {
                let password = a
                    .password_file
                    .map(|p| secret_file(&format!("{key}.auth.password_file"), &resolve(&p)))
                    .transpose()?;
                let token = a
                    .token_file
                    .map(|p| secret_file(&format!("{key}.auth.token_file"), &resolve(&p)))
                    .transpose()?;
                build_auth(&format!("{key}.auth"), a.username, password, token)?
            }
        };
        let tls = t
            .tls
            .map(|t| TlsConfig {
                ca_file: t.ca_file.map(|p| resolve(&p)),
                insecure_skip_verify: t.insecure_skip_verify,
            })
            .unwrap_or_default();
        let dur = |field: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
            v.as_deref()
                .map(|raw| {
                    crate::duration::parse_duration(raw).map_err(|e| {
                        let line = locate_key(text, i, field)
                            .map(|l| format!(" at line {l}"))
                            .unwrap_or_default();
                        invalid(format!("{key}.{field}"), format!("{e}{line}"))
                    })
                })
                .transpose()
        };
        let timeout = dur("timeout", &t.timeout)?;
        let poll_interval = dur("poll_interval", &t.poll_interval)?;
        let max_age = dur("max_age", &t.max_age)?;
        let target = build_target(
            t.name,
            &t.url,
            &format!("{key}.url"),
            auth,
            tls,
            &format!("{key}.tls.ca_file"),
            timeout.unwrap_or(default_timeout),
            poll_interval.unwrap_or(default_interval),
            max_age.or(default_max_age),
        )
        .map_err(|e| match e {
            ConfigError::Invalid { key: k, message } if !k.starts_with("targets[") => {
                invalid(format!("{key}.{k}"), message)
            }
            other => other,
        })?;
        out.push(target);
    }
    Ok(out)
}

/// Finds the 1-based line of `key:` inside the `index`-th item of the top-level `targets`
/// list, for error messages about values serde accepted as strings.
fn locate_key(text: &str, index: usize, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let items: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("- "))
        .map(|(n, _)| n)
        .collect();
    let min_indent = items.iter().map(|n| indent(lines[*n])).min()?;
    let items: Vec<usize> = items
        .into_iter()
        .filter(|n| indent(lines[*n]) == min_indent)
        .collect();
    let start = *items.get(index)?;
    let end = items.get(index + 1).copied().unwrap_or(lines.len());
    (start..end)
        .find(|n| {
            let t = lines[*n].trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, String>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn args(extra: &[&str]) -> ExporterArgs {
        let mut v = vec!["x"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().exporter
    }

    fn no_env() -> FakeEnv {
        FakeEnv(HashMap::new())
    }

    #[test]
    fn flag_mode_builds_one_target_with_context_path() {
        let a = args(&[
            "--bitbucket.url",
            "https://bb.example.com/bitbucket/",
            "--poll.interval",
            "1m",
        ]);
        let c = Config::from_args(&a, &no_env()).unwrap();
        let t = &c.targets[0];
        assert_eq!(
            t.endpoint("cluster").as_str(),
            "https://bb.example.com/bitbucket/rest/zdu/cluster"
        );
        assert_eq!(t.poll_interval, Duration::from_secs(60));
        assert_eq!(t.max_age, Duration::from_secs(180));
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(c.web.listen_addresses[0].port(), 9879);
    }

    #[test]
    fn password_comes_from_env_and_never_from_a_flag() {
        let env = FakeEnv(HashMap::from([(ENV_PASSWORD, "s3cr3t-pw".to_string())]));
        let a = args(&[
            "--bitbucket.url",
            "http://h:7990",
            "--bitbucket.username",
            "zdu",
        ]);
        let c = Config::from_args(&a, &env).unwrap();
        assert!(matches!(c.targets[0].auth, AuthConfig::Basic { .. }));
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
        assert!(Cli::try_parse_from(["x", "--bitbucket.password", "p"]).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bitbucket.url", "ftp://h"], "--bitbucket.url"),
            (
                &["--bitbucket.url", "https://u:p@h"],
                "must not contain credentials",
            ),
            (
                &["--bitbucket.url", "https://h/rest/zdu/cluster"],
                "base URL",
            ),
            (
                &["--bitbucket.url", "https://h", "--bitbucket.username", "u"],
                "needs a password",
            ),
            (
                &["--bitbucket.url", "https://h", "--bitbucket.timeout", "1m"],
                "longer than the poll interval",
            ),
            (
                &[
                    "--bitbucket.url",
                    "https://h",
                    "--web.listen-address",
                    "nope",
                ],
                "--web.listen-address",
            ),
            (
                &[
                    "--bitbucket.url",
                    "https://h",
                    "--web.telemetry-path",
                    "/probe",
                ],
                "reserved",
            ),
        ];
        for (flags, want) in cases {
            let e = Config::from_args(&args(flags), &no_env())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{flags:?}: {e}");
        }
        assert!(matches!(
            Config::from_args(&args(&[]), &no_env()),
            Err(ConfigError::NoTarget)
        ));
    }

    #[test]
    fn yaml_targets_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "pw\n").unwrap();
        let path = dir.path().join("c.yml");
        let yaml = "targets:\n  - name: prod\n    url: https://bb.example.com\n    auth:\n      username: zdu\n      password_file: pw\n    poll_interval: 15s\n  - name: staging\n    url: http://10.0.0.1:7990\n";
        let t = parse_targets_yaml(
            yaml,
            &path,
            Duration::from_secs(10),
            Duration::from_secs(30),
            None,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].poll_interval, Duration::from_secs(15));
        assert!(t[0]
            .auth
            .describe()
            .contains(&dir.path().join("pw").display().to_string()));
        assert_eq!(t[1].poll_interval, Duration::from_secs(30));
    }

    #[test]
    fn yaml_errors_name_key_and_line() {
        let path = Path::new("/tmp/c.yml");
        let d = Duration::from_secs(10);
        let i = Duration::from_secs(30);
        let e = parse_targets_yaml(
            "targets:\n  - name: a\n    url: http://h\n    pol_interval: 1s\n",
            path,
            d,
            i,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pol_interval") && e.contains("line 4"), "{e}");
        let e = parse_targets_yaml(
            "targets:\n  - name: a\n    url: http://h\n    timeout: soon\n",
            path,
            d,
            i,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("invalid duration") && e.contains("line 4"),
            "{e}"
        );
        let e = parse_targets_yaml(
            "targets:\n  - name: a\n    url: http://h\n  - name: a\n    url: http://h\n",
            path,
            d,
            i,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("targets[1].name") && e.contains("twice"), "{e}");
        let e = parse_targets_yaml("targets:\n  - name: a\n    url: nope\n", path, d, i, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("targets[0].url"), "{e}");
    }
}

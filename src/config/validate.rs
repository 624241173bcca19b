//! Validation: the one place where flags and file values become a [`Config`] or a
//! [`TargetConfig`]. Every error names the flag or key at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::flags::{ExporterArgs, DEFAULT_TIMEOUT, ENV_PASSWORD, ENV_TOKEN};
use super::{AuthConfig, Config, ConfigError, Env, TargetConfig, TlsConfig, WebSettings};
use crate::model::Product;
use crate::secret::SecretSource;

/// Paths the telemetry path must not take: every route the exporter serves (a collision
/// made the router panic at start).
const RESERVED_PATHS: [&str; 7] = [
    "/",
    "/probe",
    "/-/healthy",
    "/-/ready",
    "/-/reload",
    "/upgrade",
    "/api/v1/targets",
];

/// Folders whose every path belongs to the exporter (`/api/v1/targets/{name}/upgrade`,
/// and whatever a later version adds there).
const RESERVED_PREFIXES: [&str; 2] = ["/-/", "/api/"];

/// Longest target name, in bytes: it is a label value, a URL path segment and a state
/// file key.
pub const MAX_TARGET_NAME_BYTES: usize = 64;

/// The telemetry path is a literal path: letters, digits and `/ - _ . ~` only (no `{`, `*`
/// or `%`, which the router would read as a pattern), and no route of the exporter's.
fn telemetry_path(path: &str) -> Result<(), ConfigError> {
    let literal = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~'));
    if !literal {
        return Err(invalid(
            "--web.telemetry-path",
            format!("{path:?} may hold only letters, digits and '/', '-', '_', '.', '~'"),
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if RESERVED_PATHS.contains(&path)
        || RESERVED_PATHS.contains(&trimmed)
        || RESERVED_PREFIXES.iter().any(|p| path.starts_with(p))
    {
        return Err(invalid(
            "--web.telemetry-path",
            format!("{path} is a reserved path (served by the exporter itself: {}, and everything under {})", RESERVED_PATHS.join(", "), RESERVED_PREFIXES.join(" and ")),
        ));
    }
    Ok(())
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Settings that flags give every target (a file target may override each).
pub(super) struct Defaults {
    /// `--bitbucket.timeout`, when given.
    pub timeout: Option<Duration>,
    pub poll_interval: Duration,
    pub max_age: Option<Duration>,
    /// `--bitbucket.max-nodes`.
    pub max_nodes: usize,
}

/// Validates a whole configuration: the web settings and a non-empty list of targets with
/// unique names.
pub(super) fn config(
    targets: Vec<TargetConfig>,
    web: WebSettings,
    state_file: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    let path = &web.telemetry_path;
    if !path.starts_with('/') || path.len() < 2 {
        return Err(invalid(
            "--web.telemetry-path",
            format!("{path:?} must start with / and not be / alone"),
        ));
    }
    telemetry_path(path)?;
    if web.max_requests == 0 {
        return Err(invalid("--web.max-requests", "must be at least 1"));
    }
    if targets.is_empty() {
        return Err(ConfigError::NoTarget);
    }
    unique_names(&targets)?;
    Ok(Config {
        targets,
        web,
        state_file,
    })
}

/// No two targets share a name (`/probe?target=` and the state file key on it).
pub(super) fn unique_names(targets: &[TargetConfig]) -> Result<(), ConfigError> {
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.name == t.name) {
            return Err(invalid(
                format!("targets[{i}].name"),
                format!("{:?} is used twice", t.name),
            ));
        }
    }
    Ok(())
}

/// A target name: non-empty, letters, digits, `-`, `_` and `.`; not `.` nor `..` (URL
/// path segments that clients normalise away); at most [`MAX_TARGET_NAME_BYTES`].
fn validate_name(name: &str) -> Result<(), ConfigError> {
    if name.len() > MAX_TARGET_NAME_BYTES {
        return Err(invalid(
            "name",
            format!("{} bytes long; at most {MAX_TARGET_NAME_BYTES}", name.len()),
        ));
    }
    if name == "." || name == ".." {
        return Err(invalid(
            "name",
            format!("{name:?} is a path segment that URLs normalise away; choose another name"),
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "name",
            format!("{name:?} must be non-empty and use only letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}

/// A Basic-auth user name must be non-empty and hold no `:`.
pub(super) fn validate_auth(auth: &AuthConfig) -> Result<(), ConfigError> {
    match auth {
        AuthConfig::Basic { username, .. } if username.is_empty() || username.contains(':') => {
            Err(invalid("username", "must be non-empty and contain no ':'"))
        }
        _ => Ok(()),
    }
}

/// Parses `host:port`, `:port` (all interfaces, IPv4 and IPv6: `[::]:port`, bound dual-stack
/// by [`crate::server::bind_all`]) or `[v6]:port`.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, ConfigError> {
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("[::]:{port}")
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

pub(super) fn target_from_flags(
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
    build_target(TargetSpec {
        name: "default".into(),
        url,
        url_key: "--bitbucket.url",
        auth,
        tls: TlsConfig {
            ca_file: args.bitbucket_ca_file.clone(),
            insecure_skip_verify: args.bitbucket_insecure_skip_verify,
        },
        tls_key: "--bitbucket.ca-file",
        timeout: d
            .timeout
            .map_or(Timeout::Default(DEFAULT_TIMEOUT), Timeout::Explicit),
        timeout_key: "--bitbucket.timeout",
        poll_interval: d.poll_interval,
        max_age: d.max_age,
        max_nodes: d.max_nodes,
        max_nodes_key: "--bitbucket.max-nodes",
        product: args.bitbucket_product,
    })
}

pub(super) fn secret_file(key: &str, path: &Path) -> Result<Arc<SecretSource>, ConfigError> {
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

pub(super) fn build_auth(
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

/// The request timeout of a target, and whether the user gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timeout {
    /// Not given: clamped to the poll interval, as Prometheus does with `scrape_timeout`.
    Default(Duration),
    /// Given by the user: refused when longer than the poll interval.
    Explicit(Duration),
}

/// Everything one target is made of, before validation; `*_key` name the flag or file key
/// that an error points to.
pub(super) struct TargetSpec<'a> {
    pub name: String,
    pub url: &'a str,
    pub url_key: &'a str,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    pub tls_key: &'a str,
    pub timeout: Timeout,
    pub timeout_key: &'a str,
    pub poll_interval: Duration,
    pub max_age: Option<Duration>,
    pub max_nodes: usize,
    pub max_nodes_key: &'a str,
    pub product: Product,
}

/// Validates one target; the only way a [`TargetConfig`] is made.
pub(super) fn build_target(spec: TargetSpec<'_>) -> Result<TargetConfig, ConfigError> {
    let TargetSpec {
        name,
        url,
        url_key,
        auth,
        tls,
        tls_key,
        timeout,
        timeout_key,
        poll_interval,
        max_age,
        max_nodes,
        max_nodes_key,
        product,
    } = spec;
    validate_name(&name)?;
    let base_url = validate_url(url_key, url)?;
    if let Some(ca) = &tls.ca_file {
        let pem = crate::sys::safe_file::read(ca)
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
    if poll_interval < Duration::from_millis(100) {
        return Err(invalid("poll_interval", "must be at least 100ms"));
    }
    let timeout = match timeout {
        Timeout::Default(t) => t.min(poll_interval),
        Timeout::Explicit(t) if t > poll_interval => {
            return Err(invalid(
                timeout_key,
                format!(
                    "{} is longer than the poll interval {}",
                    crate::sys::duration::format_duration(t),
                    crate::sys::duration::format_duration(poll_interval)
                ),
            ))
        }
        Timeout::Explicit(t) => t,
    };
    if timeout < Duration::from_millis(10) {
        return Err(invalid(timeout_key, "must be at least 10ms"));
    }
    if max_nodes == 0 {
        return Err(invalid(max_nodes_key, "must be at least 1"));
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
        max_nodes,
        product,
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

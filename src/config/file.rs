//! The YAML schema of `--config.file` (a list of targets) and its parser. Only the shape
//! of the file lives here; every value goes through `validate`, as flags do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::flags::DEFAULT_TIMEOUT;
use super::validate::{
    build_auth, build_target, invalid, secret_file, unique_names, Defaults, TargetSpec, Timeout,
};
use super::{AuthConfig, ConfigError, TargetConfig, TlsConfig};
use crate::model::Product;

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
    #[serde(default)]
    max_nodes: Option<usize>,
    #[serde(default)]
    product: Product,
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

/// Parses the YAML of `--config.file`. Paths in it are relative to the file's folder.
///
/// `default_timeout` stands for a `--bitbucket.timeout` given explicitly; use
/// [`Config::from_args`](super::Config::from_args) for the clamped default.
pub fn parse_targets_yaml(
    text: &str,
    path: &Path,
    default_timeout: Duration,
    default_interval: Duration,
    default_max_age: Option<Duration>,
) -> Result<Vec<TargetConfig>, ConfigError> {
    let defaults = Defaults {
        timeout: Some(default_timeout),
        poll_interval: default_interval,
        max_age: default_max_age,
        max_nodes: crate::model::DEFAULT_MAX_NODES,
    };
    parse(text, path, &defaults)
}

/// Reads and parses the `--config.file` at `path`.
pub(super) fn load(path: &Path, d: &Defaults) -> Result<Vec<TargetConfig>, ConfigError> {
    let text = crate::sys::safe_file::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, d)
}

fn parse(text: &str, path: &Path, d: &Defaults) -> Result<Vec<TargetConfig>, ConfigError> {
    // The message never quotes values from the file: it may be a secret given by mistake.
    let file: FileConfig = serde_norway::from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_path_buf(),
        message: crate::secret::yaml_error_message(&e),
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
        let auth = file_auth(&key, t.auth, &resolve)?;
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
                    crate::sys::duration::parse_duration(raw).map_err(|e| {
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
        let target = build_target(TargetSpec {
            name: t.name,
            url: &t.url,
            url_key: &format!("{key}.url"),
            auth,
            tls,
            tls_key: &format!("{key}.tls.ca_file"),
            timeout: timeout
                .or(d.timeout)
                .map_or(Timeout::Default(DEFAULT_TIMEOUT), Timeout::Explicit),
            timeout_key: "timeout",
            poll_interval: poll_interval.unwrap_or(d.poll_interval),
            max_age: max_age.or(d.max_age),
            max_nodes: t.max_nodes.unwrap_or(d.max_nodes),
            max_nodes_key: "max_nodes",
            product: t.product,
        })
        .map_err(|e| match e {
            ConfigError::Invalid { key: k, message } if !k.starts_with("targets[") => {
                invalid(format!("{key}.{k}"), message)
            }
            other => other,
        })?;
        out.push(target);
    }
    unique_names(&out)?;
    Ok(out)
}

/// The `auth` block of the target at `key`, its files resolved with `resolve`.
fn file_auth(
    key: &str,
    auth: Option<FileAuth>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<AuthConfig, ConfigError> {
    let Some(a) = auth else {
        return Ok(AuthConfig::None);
    };
    let password = a
        .password_file
        .map(|p| secret_file(&format!("{key}.auth.password_file"), &resolve(&p)))
        .transpose()?;
    let token = a
        .token_file
        .map(|p| secret_file(&format!("{key}.auth.token_file"), &resolve(&p)))
        .transpose()?;
    build_auth(&format!("{key}.auth"), a.username, password, token)
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

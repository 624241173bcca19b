//! The web-config file: its YAML schema as the exporter-toolkit writes it (strict: unknown
//! keys are refused; its TLS part and where PEM data comes from are in `tls_file`), and
//! [`WebSettings`], the validated whole
//! that the other files of this module tree fill section by section.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::tls::TlsSettings;
use super::tls_file::FileTls;
use super::{basic_auth, headers, invalid, WebConfigError};
use crate::sys::duration::parse_go_duration;

// ---------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    tls_server_config: FileTls,
    http_server_config: FileHttp,
    rate_limit: FileRateLimit,
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileHttp {
    http2: Option<bool>,
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileRateLimit {
    burst: u32,
    interval: Option<GoDuration>,
}

/// A Go `time.Duration` as YAML gives it: integer nanoseconds or a string like `1m30s`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Nanos(u64),
    Text(String),
}

fn parse_file(content: &str) -> Result<FileConfig, WebConfigError> {
    // An empty file (or one with only comments) is a valid, empty configuration.
    let meaningful = content
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    if !meaningful {
        return Ok(FileConfig::default());
    }
    let parsed: Option<FileConfig> = serde_norway::from_str(content)
        .map_err(|e| WebConfigError::Yaml(crate::secret::yaml_error_message(&e)))?;
    Ok(parsed.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// The whole file, validated.

/// The per-request part of a web configuration: response headers and users.
#[derive(Debug, Clone, Default)]
pub struct RequestSettings {
    /// `http_server_config.headers`, validated, empty values dropped.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// user → bcrypt hash.
    pub users: BTreeMap<String, String>,
}

/// A parsed and validated web configuration file (`--web.config.file`).
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The file it was read from; relative paths in it are relative to its folder.
    pub path: PathBuf,
    /// `tls_server_config`; `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Headers and users, re-read per request while serving.
    pub request: RequestSettings,
    /// `rate_limit`: (interval between requests, burst); `None`: off.
    pub rate_limit: Option<(Duration, u32)>,
    /// `http_server_config.http2` (HTTP/2 is not served; accepted for compatibility).
    pub http2: bool,
}

impl WebSettings {
    /// Reads and validates a file, including its certificates and keys.
    pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
        let content =
            crate::sys::safe_file::read_to_string(path).map_err(|e| WebConfigError::Read {
                path: path.to_path_buf(),
                source: e,
            })?;
        let c = WebSettings::parse(path, &content)?;
        if let Some(tls) = &c.tls {
            tls.build(&tls.read_inputs()?)?;
        }
        Ok(c)
    }

    /// Parses and validates `content` (as if read from `path`) without reading other files.
    pub fn parse(path: &Path, content: &str) -> Result<WebSettings, WebConfigError> {
        let f = parse_file(content)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = TlsSettings::from_file(&f.tls_server_config, dir)?;
        let headers = headers::validate(&f.http_server_config.headers)?;
        for (user, hash) in &f.basic_auth_users {
            basic_auth::validate_hash(user, hash)?;
        }
        let interval = match f.rate_limit.interval {
            None => Duration::ZERO,
            Some(GoDuration::Nanos(n)) => Duration::from_nanos(n),
            Some(GoDuration::Text(s)) => parse_go_duration(&s)
                .ok_or_else(|| invalid(format!("rate_limit.interval: invalid duration {s:?}")))?,
        };
        Ok(WebSettings {
            path: path.to_path_buf(),
            tls,
            request: RequestSettings {
                headers,
                users: f.basic_auth_users,
            },
            rate_limit: (!interval.is_zero()).then_some((interval, f.rate_limit.burst)),
            http2: f.http_server_config.http2.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_do_not_echo_values() {
        let e = parse_file("hunter2-secret").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("invalid type: string, expected"), "{e}");
        let e = parse_file("Secret\"Middle\"Tail123")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("Middle") && !e.contains("Tail"), "{e}");
        let e = parse_file("p@ss:w/rd\"'<>").unwrap_err().to_string();
        assert!(!e.contains("'<>") && !e.contains("w/rd"), "{e}");
        let e = parse_file("foo: 1").unwrap_err().to_string();
        assert!(e.contains("unknown field") && !e.contains("foo"), "{e}");
    }

    #[test]
    fn rate_limit_interval_in_go_syntax_or_nanoseconds() {
        let p = Path::new("/x/web.yml");
        let c = WebSettings::parse(p, "rate_limit:\n  interval: 1.5s\n  burst: 3\n").unwrap();
        assert_eq!(c.rate_limit, Some((Duration::from_millis(1500), 3)));
        let c = WebSettings::parse(p, "rate_limit:\n  interval: 1000\n").unwrap();
        assert_eq!(c.rate_limit, Some((Duration::from_micros(1), 0)));
        assert!(WebSettings::parse(p, "rate_limit:\n  interval: 0\n")
            .unwrap()
            .rate_limit
            .is_none());
        let e = WebSettings::parse(p, "rate_limit:\n  interval: 1d\n").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}

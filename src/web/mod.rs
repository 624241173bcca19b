//! The exporter-toolkit web layer (`--web.config.file`), as one module
//! tree that knows nothing of Bitbucket: a Rust counterpart of
//! `prometheus/exporter-toolkit`'s `web/` package.
//!
//! The toolkit's semantics are kept: strict YAML, paths relative to the file, the file
//! re-read on every request (users, headers) and every connection (certificates) so
//! rotation needs no restart. Values the toolkit accepts but rustls cannot honour (TLS
//! 1.0/1.1, CBC cipher suites, P-521, verifying client certificates without a CA) are
//! refused at start with a message saying why; see `docs/web-config.md`.
//!
//! One concern per file:
//!
//! | file | concern |
//! |---|---|
//! | [`config`] | the YAML schema of the web-config file, and [`WebSettings`], the validated whole |
//! | [`tls`] | `tls_server_config`: validation and the rustls `ServerConfig` builder |
//! | [`client_auth`] | client-certificate policies: the rustls verifiers and the SAN check |
//! | [`headers`] | `http_server_config.headers`: the allowed response headers |
//! | [`basic_auth`] | `basic_auth_users`: bcrypt hashes, the `Authorization` header, the check and its cache |
//! | [`rate_limit`] | `rate_limit`: the endpoint-wide token bucket |
//! | [`runtime`] | the configuration while serving: re-read per request and per connection |
//! | [`middleware`] | the axum middleware: rate limit, basic auth, headers |

#![warn(missing_docs)]

pub mod basic_auth;
pub mod client_auth;
pub mod config;
pub mod headers;
pub mod middleware;
pub mod rate_limit;
pub mod runtime;
pub mod tls;
mod tls_file;

use std::path::PathBuf;

pub use basic_auth::{AuthResult, Authenticator};
pub use client_auth::{subject_alt_names, ClientAuth};
pub use config::{RequestSettings, WebSettings};
pub use headers::ALLOWED_HEADERS;
pub use rate_limit::RateLimiter;
pub use runtime::WebConfigRuntime;
pub use tls::TlsSettings;

/// Why a web configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file (or, while serving, its re-read) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The web configuration file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Not YAML, or not the toolkit's schema; the message holds nothing from the file (it may
    /// be a secret given by mistake), see [`crate::secret::yaml_error_message`].
    #[error("{0}")]
    Yaml(String),
    /// A value the exporter-toolkit refuses too.
    #[error("{0}")]
    Invalid(String),
    /// Valid for the exporter-toolkit, but rustls cannot do it.
    #[error("{0} (this exporter's TLS stack, rustls, cannot honour it; see docs/web-config.md)")]
    Unsupported(String),
}

/// Shorthand for [`WebConfigError::Invalid`].
pub(crate) fn invalid(s: impl Into<String>) -> WebConfigError {
    WebConfigError::Invalid(s.into())
}

//! The web configuration while serving: the file is re-read on every request (users,
//! headers) and every new connection (certificates), and the parsed result reused while
//! the bytes are unchanged, so rotation needs no restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;

use super::basic_auth::Authenticator;
use super::config::{RequestSettings, WebSettings};
use super::rate_limit::RateLimiter;
use super::{invalid, WebConfigError};

/// Re-reads refused while serving because they would drop authentication (see
/// [`WebConfigRuntime::request_settings`]), process-wide.
static AUTH_DROPS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many re-reads of a web configuration were refused because they would turn off the
/// authentication the exporter started with (each distinct file content counted once).
pub fn auth_drops_refused_total() -> u64 {
    AUTH_DROPS_REFUSED.load(Ordering::Relaxed)
}

/// The last TLS configuration built: (config file bytes, PEM inputs, result).
type CachedTls = (Vec<u8>, Vec<Vec<u8>>, Arc<ServerConfig>);

/// The web configuration while serving: re-reads the file per request and per connection,
/// reusing the parsed result while the bytes are unchanged.
#[derive(Debug)]
pub struct WebConfigRuntime {
    path: PathBuf,
    /// Whether TLS was configured at start (as in the toolkit, this is fixed until restart).
    tls_enabled: bool,
    /// Whether basic auth was configured at start: a re-read without users is then refused.
    users_at_start: bool,
    /// Whether client certificates were required and verified at start: likewise.
    client_certs_at_start: bool,
    /// The content of the last re-read refused for dropping authentication (logged once).
    refused: Mutex<Option<Vec<u8>>>,
    limiter: Option<RateLimiter>,
    auth: Authenticator,
    requests: Mutex<Option<(Vec<u8>, Arc<RequestSettings>)>>,
    tls: Mutex<Option<CachedTls>>,
}

impl WebConfigRuntime {
    /// Loads and fully validates the file; errors are meant to stop the exporter at start.
    pub fn load(path: &Path) -> Result<Arc<WebConfigRuntime>, WebConfigError> {
        let c = WebSettings::load(path)?;
        if c.http2 && c.tls.is_some() {
            tracing::info!("http_server_config.http2 is true, but only HTTP/1.1 is served");
        }
        let client_certs_at_start = c.tls.as_ref().is_some_and(|t| {
            t.client_auth == super::client_auth::ClientAuth::RequireAndVerifyClientCert
        });
        Ok(Arc::new(WebConfigRuntime {
            path: path.to_path_buf(),
            tls_enabled: c.tls.is_some(),
            users_at_start: !c.request.users.is_empty(),
            client_certs_at_start,
            refused: Mutex::new(None),
            limiter: c.rate_limit.map(|(i, b)| RateLimiter::new(i, b)),
            auth: Authenticator::default(),
            // Seeded with the start's settings: the "previous" kept if the first re-read
            // drops authentication. The empty key never equals a file that has users.
            requests: Mutex::new(Some((Vec::new(), Arc::new(c.request)))),
            tls: Mutex::new(None),
        }))
    }

    /// The web configuration file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether connections are TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls_enabled
    }

    /// The endpoint-wide rate limiter, when `rate_limit` is set (fixed until restart).
    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.limiter.as_ref()
    }

    /// The basic-auth checker and its cache.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    fn read(&self) -> Result<Vec<u8>, WebConfigError> {
        crate::sys::safe_file::read(&self.path).map_err(|e| WebConfigError::Read {
            path: self.path.clone(),
            source: e,
        })
    }

    /// Logs and counts a re-read refused for dropping `what` (once per distinct content).
    fn refuse_auth_drop(&self, bytes: &[u8], what: &str) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.as_deref() != Some(bytes) {
            tracing::error!(
                path = %self.path.display(),
                "the web configuration no longer sets {what}, which it did at start: refused, the previous settings are kept (restart the exporter to serve without authentication)"
            );
            AUTH_DROPS_REFUSED.fetch_add(1, Ordering::Relaxed);
            *refused = Some(bytes.to_vec());
        }
    }

    /// The current per-request settings. A file that no longer parses is an error (the
    /// caller answers 500); one that parses but has lost the `basic_auth_users` it had at
    /// start (emptied, truncated by a tool about to rewrite it, `{}`) is refused: the
    /// previous settings stay in force, the refusal is logged and counted.
    pub fn request_settings(&self) -> Result<Arc<RequestSettings>, WebConfigError> {
        let bytes = self.read()?;
        let mut cached = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, s)) = cached.as_ref() {
            if *b == bytes {
                return Ok(s.clone());
            }
        }
        let c = WebSettings::parse(&self.path, &String::from_utf8_lossy(&bytes))?;
        if self.users_at_start && c.request.users.is_empty() {
            if let Some((_, previous)) = cached.as_ref() {
                self.refuse_auth_drop(&bytes, "basic_auth_users");
                return Ok(previous.clone());
            }
        }
        let s = Arc::new(c.request);
        *cached = Some((bytes, s.clone()));
        Ok(s)
    }

    /// The TLS configuration for a new connection, from the current file and certificates.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, WebConfigError> {
        let bytes = self.read()?;
        let c = WebSettings::parse(&self.path, &String::from_utf8_lossy(&bytes))?;
        let tls = c
            .tls
            .ok_or_else(|| invalid("TLS config is not present (it was at start)"))?;
        if self.client_certs_at_start
            && tls.client_auth != super::client_auth::ClientAuth::RequireAndVerifyClientCert
        {
            self.refuse_auth_drop(&bytes, "client_auth_type: RequireAndVerifyClientCert");
            return Err(invalid(
                "client_auth_type is no longer RequireAndVerifyClientCert (it was at start)",
            ));
        }
        let inputs = tls.read_inputs()?;
        let mut cached = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, i, cfg)) = cached.as_ref() {
            if *b == bytes && *i == inputs {
                return Ok(cfg.clone());
            }
        }
        let cfg = tls.build(&inputs)?;
        *cached = Some((bytes, inputs, cfg.clone()));
        Ok(cfg)
    }
}

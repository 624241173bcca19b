//! The web configuration while serving: the file is re-read on every request (users,
//! headers) and every new connection (certificates), and the parsed result reused while
//! the bytes are unchanged, so rotation needs no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;

use super::basic_auth::Authenticator;
use super::config::{RequestSettings, WebSettings};
use super::rate_limit::RateLimiter;
use super::{invalid, WebConfigError};

/// The last TLS configuration built: (config file bytes, PEM inputs, result).
type CachedTls = (Vec<u8>, Vec<Vec<u8>>, Arc<ServerConfig>);

/// The web configuration while serving: re-reads the file per request and per connection,
/// reusing the parsed result while the bytes are unchanged.
#[derive(Debug)]
pub struct WebConfigRuntime {
    path: PathBuf,
    /// Whether TLS was configured at start (as in the toolkit, this is fixed until restart).
    tls_enabled: bool,
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
        Ok(Arc::new(WebConfigRuntime {
            path: path.to_path_buf(),
            tls_enabled: c.tls.is_some(),
            limiter: c.rate_limit.map(|(i, b)| RateLimiter::new(i, b)),
            auth: Authenticator::default(),
            requests: Mutex::new(None),
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
        std::fs::read(&self.path).map_err(|e| WebConfigError::Read {
            path: self.path.clone(),
            source: e,
        })
    }

    /// The current per-request settings.
    pub fn request_settings(&self) -> Result<Arc<RequestSettings>, WebConfigError> {
        let bytes = self.read()?;
        let mut cached = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, s)) = cached.as_ref() {
            if *b == bytes {
                return Ok(s.clone());
            }
        }
        let c = WebSettings::parse(&self.path, &String::from_utf8_lossy(&bytes))?;
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

//! HTTP clients shared by targets: one `reqwest::Client` (one connection pool, one TLS
//! configuration) per distinct set of TLS, timeout and keep-alive settings, instead of one per
//! target. A client holds no credentials: each request carries its target's own.
//!
//! At most one connection per upstream origin is kept alive between polls, and none when the
//! exporter's file-descriptor budget could not hold one per origin ([`crate::sys::fds`]): then
//! a poll's calls, one after the other, share the one connection the first opens, and the
//! last asks for it to be closed (`Connection: close`, [`super::ZduClient::closing_connections`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{error_chain, install_crypto_provider, same_origin, ClientBuildError, MAX_REDIRECTS};
use crate::config::TargetConfig;

/// How long a connection that is not kept alive between polls may stay idle in the pool.
pub const IDLE_AFTER_POLL: Duration = Duration::from_secs(1);

/// What makes two targets' HTTP clients interchangeable. The CA bundle is keyed by its bytes,
/// not its path: a reload after the file changed builds a new client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    ca_pem: Option<Vec<u8>>,
    insecure_skip_verify: bool,
    timeout: Duration,
    keep_alive: bool,
}

impl ClientKey {
    /// The key of `target`'s client; reads its CA file, if any.
    pub fn of(target: &TargetConfig, keep_alive: bool) -> Result<Self, ClientBuildError> {
        let tls = target.tls();
        let ca_pem = match (&tls.ca_file, tls.insecure_skip_verify) {
            (Some(ca), false) => Some(
                crate::sys::safe_file::read(ca)
                    .map_err(|e| build_error(target, format!("{}: {e}", ca.display())))?,
            ),
            _ => None,
        };
        Ok(ClientKey {
            ca_pem,
            insecure_skip_verify: tls.insecure_skip_verify,
            timeout: target.timeout(),
            keep_alive,
        })
    }

    /// Builds the client these settings describe.
    pub fn build(&self, target: &TargetConfig) -> Result<reqwest::Client, ClientBuildError> {
        install_crypto_provider();
        // The origin a redirect may stay on is the first request's: every request of a
        // target goes to its own base URL's origin, so this is the target's origin.
        let redirect = reqwest::redirect::Policy::custom(|attempt| {
            let origin = attempt.previous().first();
            if origin.is_some_and(|o| same_origin(attempt.url(), o))
                && attempt.previous().len() < MAX_REDIRECTS
            {
                attempt.follow()
            } else {
                // Stop: the 3xx is returned and reported (`unexpected_status`): credentials
                // never leave the origin, and a loop ends after MAX_REDIRECTS.
                attempt.stop()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(redirect)
            .no_proxy()
            // One idle connection per origin: kept between polls, or only between a poll's
            // two calls when the last one asks for `Connection: close` (not kept alive).
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true);
        if !self.keep_alive {
            // A connection lives for one poll: TCP keep-alive probes would never fire, and
            // the poll's deadline bounds it, so skip setting them on every socket; anything
            // left idle (a second connection a slow first call made the poll open) is closed
            // soon after the poll.
            builder = builder
                .pool_idle_timeout(IDLE_AFTER_POLL)
                .tcp_keepalive(None)
                .tcp_keepalive_interval(None)
                .tcp_keepalive_retries(None)
                .tcp_user_timeout(None);
        }
        if self.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if let Some(pem) = &self.ca_pem {
            // The file's certificates are anchors, and each is also trusted as itself when
            // the server presents exactly it (a self-signed Bitbucket): crate::client::tls.
            let tls = crate::client::tls::client_config(pem).map_err(|e| {
                let ca = target
                    .tls()
                    .ca_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""));
                build_error(target, format!("{}: {e}", ca.display()))
            })?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        builder
            .build()
            .map_err(|e| build_error(target, error_chain(&e)))
    }
}

fn build_error(target: &TargetConfig, message: String) -> ClientBuildError {
    ClientBuildError {
        target: target.name().to_string(),
        message,
    }
}

/// The clients in use, by settings: kept across reloads so that unchanged targets and new
/// ones with the same settings share one pool.
#[derive(Debug, Default)]
pub struct SharedClients {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl SharedClients {
    /// The client for `target`, built on first use of its settings.
    pub fn get(
        &self,
        target: &TargetConfig,
        keep_alive: bool,
    ) -> Result<(ClientKey, reqwest::Client), ClientBuildError> {
        let key = ClientKey::of(target, keep_alive)?;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok((key, c.clone()));
        }
        let client = key.build(target)?;
        clients.insert(key.clone(), client.clone());
        Ok((key, client))
    }

    /// Forgets every client whose settings no target uses any more (a poller still running
    /// holds its own handle until it is stopped).
    pub fn retain(&self, in_use: &[ClientKey]) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| in_use.contains(k));
    }

    /// How many distinct clients are held.
    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no client is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The upstream origins (scheme, host, port) of `targets`, counted once per distinct client
/// settings: each holds at most one kept-alive connection.
pub fn distinct_origins(targets: &[TargetConfig]) -> usize {
    targets
        .iter()
        .map(|t| {
            let u = t.base_url();
            (
                u.scheme().to_string(),
                u.host_str().map(str::to_string),
                u.port_or_known_default(),
                t.tls().clone().ca_file,
                t.tls().insecure_skip_verify,
                t.timeout(),
            )
        })
        .collect::<std::collections::HashSet<_>>()
        .len()
}

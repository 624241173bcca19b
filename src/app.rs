//! Wiring: the running set of targets, their pollers and the reload logic. [`Exporter`] is
//! what the HTTP layer talks to; it never blocks a scrape on Bitbucket.
//!
//! Targets share HTTP clients by settings ([`SharedClients`]), keep at most one connection
//! alive per upstream origin when the descriptor budget holds it, poll under that budget's
//! permits, and start staggered ([`crate::poller::first_poll_offset`]); after their first
//! poll, polls run on the ticks of one grid ([`crate::poller::on_tick`]) so that polls due
//! together share a wake-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::client::{shared::distinct_origins, SharedClients, ZduClient};
use crate::config::{Config, ConfigError, Env, ExporterArgs, TargetConfig};
use crate::poller::{first_poll_offset, Poller};
use crate::reload::ReloadStatus;
use crate::snapshot::TargetShared;
use crate::sys::fds::FdBudget;
use crate::tracker::StateStore;

/// Errors of starting or reloading.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error(transparent)]
    /// The new configuration is invalid.
    Config(#[from] ConfigError),
    #[error(transparent)]
    /// A target's HTTP client cannot be built.
    Client(#[from] crate::client::ClientBuildError),
}

/// The exporter while it runs.
pub struct Exporter {
    /// Current targets, in config order.
    pub targets: Arc<ArcSwap<Vec<Arc<TargetShared>>>>,
    /// Outcome of the last (re)load.
    pub reload_status: Arc<ReloadStatus>,
    store: Arc<StateStore>,
    pollers: Mutex<HashMap<String, JoinHandle<()>>>,
    args: Option<ExporterArgs>,
    env: Option<Box<dyn Env + Send + Sync>>,
    reload_lock: tokio::sync::Mutex<()>,
    clients: SharedClients,
    /// Whether connections are kept alive (the last apply's choice).
    keep_alive: std::sync::atomic::AtomicBool,
    fds: FdBudget,
    poll_permits: Arc<tokio::sync::Semaphore>,
    /// The start of the poll grid every poller shares.
    poll_grid: tokio::time::Instant,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("targets", &self.targets.load().len())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Starts a poller per target. `args`/`env` are kept for `/-/reload` (None: reload is a no-op).
    /// The descriptor budget is planned from the open-files limit in force and the server's
    /// default connection cap.
    pub fn start(
        config: &Config,
        store: Arc<StateStore>,
        args: Option<ExporterArgs>,
        env: Option<Box<dyn Env + Send + Sync>>,
    ) -> Result<Arc<Self>, ExporterError> {
        let fds = FdBudget::current(crate::sys::fds::DEFAULT_MAX_CONNECTIONS);
        Self::start_with(config, store, args, env, fds)
    }

    /// [`Exporter::start`] with an explicit descriptor budget.
    pub fn start_with(
        config: &Config,
        store: Arc<StateStore>,
        args: Option<ExporterArgs>,
        env: Option<Box<dyn Env + Send + Sync>>,
        fds: FdBudget,
    ) -> Result<Arc<Self>, ExporterError> {
        tracing::debug!(
            limit = fds.limit,
            served_connections = fds.serve,
            poll_descriptors = fds.polls,
            concurrent_polls = fds.concurrent_polls(),
            "file descriptor budget"
        );
        let rt = Arc::new(Exporter {
            targets: Arc::new(ArcSwap::from_pointee(Vec::new())),
            reload_status: Arc::new(ReloadStatus::new()),
            store,
            pollers: Mutex::new(HashMap::new()),
            args,
            env,
            reload_lock: tokio::sync::Mutex::new(()),
            clients: SharedClients::default(),
            keep_alive: std::sync::atomic::AtomicBool::new(true),
            poll_permits: Arc::new(tokio::sync::Semaphore::new(fds.concurrent_polls())),
            poll_grid: tokio::time::Instant::now(),
            fds,
        });
        rt.apply(config.targets())?;
        Ok(rt)
    }

    /// The state store shared by every target's poller.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// How the open-files limit is shared out between served connections and polls.
    pub fn fd_budget(&self) -> FdBudget {
        self.fds
    }

    /// How many distinct HTTP clients the targets share.
    pub fn http_clients(&self) -> usize {
        self.clients.len()
    }

    /// Looks a target up by name.
    pub fn target(&self, name: &str) -> Option<Arc<TargetShared>> {
        self.targets
            .load()
            .iter()
            .find(|t| t.config.load().name() == name)
            .cloned()
    }

    /// True once every target finished its first poll (success or failure).
    pub fn ready(&self) -> bool {
        self.targets
            .load()
            .iter()
            .all(|t| t.snapshot.load().first_poll_done)
    }

    fn apply(&self, targets: &[TargetConfig]) -> Result<(), ExporterError> {
        // Build every client first, so that a bad new config changes nothing.
        let origins = distinct_origins(targets);
        let keep_alive = self.fds.keep_alive(origins);
        if !keep_alive {
            tracing::warn!(origins, limit = self.fds.limit,
                "too many upstream origins to keep a connection alive to each within the open-files limit: each poll opens and closes its connection (raise LimitNOFILE=)");
        }
        let mut keys = Vec::with_capacity(targets.len());
        let mut clients = Vec::with_capacity(targets.len());
        for t in targets {
            let (key, http) = self.clients.get(t, keep_alive)?;
            keys.push(key);
            clients.push(ZduClient::with_http(t.clone(), http).closing_connections(!keep_alive));
        }
        self.clients.retain(&keys);
        // A reload that changes it restarts every poller: none keeps a client of the other kind.
        let flipped = self
            .keep_alive
            .swap(keep_alive, std::sync::atomic::Ordering::Relaxed)
            != keep_alive;
        let old = self.targets.load_full();
        let mut pollers = self.pollers.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Vec::with_capacity(clients.len());
        let mut starting = Vec::new();
        for client in clients {
            let cfg = client.target().clone();
            let existing = old
                .iter()
                .find(|t| t.config.load().name() == cfg.name())
                .cloned();
            let shared = match existing {
                Some(s)
                    if !flipped
                        && s.config.load().same_settings(&cfg)
                        && pollers.contains_key(cfg.name()) =>
                {
                    next.push(s);
                    continue;
                }
                Some(s) => {
                    s.config.store(Arc::new(cfg.clone()));
                    s
                }
                None => TargetShared::new(cfg.clone(), &self.store.get(cfg.name())),
            };
            if let Some(h) = pollers.remove(cfg.name()) {
                h.abort();
            }
            tracing::info!(target_name = %cfg.name(), url = %cfg.display_url(), auth = %cfg.auth().describe(),
                interval = %crate::sys::duration::format_duration(cfg.poll_interval()), "polling target");
            starting.push(Poller::new(client, shared.clone(), self.store.clone()));
            next.push(shared);
        }
        // Staggered: the targets (re)started now do not all poll at once.
        let count = starting.len();
        for (index, poller) in starting.into_iter().enumerate() {
            let target = poller.target_name().to_string();
            let offset = first_poll_offset(index, count, poller.interval());
            let poller = poller
                .with_schedule(offset, Some(self.poll_permits.clone()))
                .on_grid(self.poll_grid);
            pollers.insert(target, tokio::spawn(poller.run()));
        }
        let keep: Vec<String> = next
            .iter()
            .map(|t| t.config.load().name().to_string())
            .collect();
        pollers.retain(|name, h| {
            let k = keep.contains(name);
            if !k {
                tracing::info!(target_name = %name, "target removed");
                h.abort();
            }
            k
        });
        self.targets.store(Arc::new(next));
        Ok(())
    }

    /// Re-reads the configuration; on error the old one stays in force.
    pub async fn reload(&self) -> Result<(), ExporterError> {
        let _guard = self.reload_lock.lock().await;
        let (Some(args), Some(env)) = (&self.args, &self.env) else {
            return Ok(());
        };
        let result = Config::from_args(args, env.as_ref())
            .map_err(ExporterError::from)
            .and_then(|c| self.apply(c.targets()));
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "reload failed, keeping the previous configuration")
            }
        }
        self.reload_status
            .set(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        result
    }

    /// Stops all pollers.
    pub fn shutdown(&self) {
        for (_, h) in self
            .pollers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            h.abort();
        }
    }
}

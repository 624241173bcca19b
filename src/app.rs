//! Wiring: the running set of targets, their pollers and the reload logic. [`Exporter`] is
//! what the HTTP layer talks to; it never blocks a scrape on Bitbucket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::client::ZduClient;
use crate::config::{Config, ConfigError, Env, ExporterArgs, TargetConfig};
use crate::poller::Poller;
use crate::reload::ReloadStatus;
use crate::snapshot::TargetShared;
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
    pub fn start(
        config: &Config,
        store: Arc<StateStore>,
        args: Option<ExporterArgs>,
        env: Option<Box<dyn Env + Send + Sync>>,
    ) -> Result<Arc<Self>, ExporterError> {
        let rt = Arc::new(Exporter {
            targets: Arc::new(ArcSwap::from_pointee(Vec::new())),
            reload_status: Arc::new(ReloadStatus::new()),
            store,
            pollers: Mutex::new(HashMap::new()),
            args,
            env,
            reload_lock: tokio::sync::Mutex::new(()),
        });
        rt.apply(config.targets())?;
        Ok(rt)
    }

    /// The state store shared by every target's poller.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
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
        let clients: Vec<ZduClient> = targets
            .iter()
            .map(|t| ZduClient::new(t.clone()))
            .collect::<Result<_, _>>()?;
        let old = self.targets.load_full();
        let mut pollers = self.pollers.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Vec::with_capacity(clients.len());
        for client in clients {
            let cfg = client.target().clone();
            let existing = old
                .iter()
                .find(|t| t.config.load().name() == cfg.name())
                .cloned();
            let shared = match existing {
                Some(s)
                    if s.config.load().same_settings(&cfg) && pollers.contains_key(cfg.name()) =>
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
            let poller = Poller::new(client, shared.clone(), self.store.clone());
            pollers.insert(cfg.name().to_string(), tokio::spawn(poller.run()));
            next.push(shared);
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

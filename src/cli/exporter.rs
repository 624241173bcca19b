//! The exporter's start-up sequence as a library function: validate the configuration (and
//! the web config), open the state file, start the pollers, bind, serve until shutdown, and
//! reload on SIGHUP. `main.rs` only parses the command line and prints errors.

use std::sync::Arc;
use std::time::Duration;

use crate::app::{Exporter, ExporterError};
use crate::config::{Config, ConfigError, ExporterArgs, ProcessEnv};
use crate::web::{WebConfigError, WebConfigRuntime, WebSettings};
use crate::{server, tracker};

/// Why the exporter could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration: {0}")]
    /// The configuration is invalid.
    Config(#[from] ConfigError),
    #[error("invalid --web.config.file {path}: {source}")]
    /// The `--web.config.file` is invalid.
    WebConfig {
        /// The file.
        path: std::path::PathBuf,
        #[source]
        /// Why.
        source: WebConfigError,
    },
    #[error("cannot start: {0}")]
    /// The pollers could not start.
    Exporter(#[from] ExporterError),
    #[error("{0}")]
    /// The state file is another exporter's (or its lock cannot be taken).
    StateFile(#[from] tracker::StateFileError),
    #[error(transparent)]
    /// Binding or serving failed.
    Io(#[from] std::io::Error),
}

/// How long in-flight requests may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `--config.check`: validates everything the exporter would load; returns a summary.
pub fn check_config(args: &ExporterArgs) -> Result<String, RunError> {
    let config = Config::from_args(args, &ProcessEnv)?;
    if let Some(path) = config.web().web_config_file() {
        WebSettings::load(path).map_err(|source| RunError::WebConfig {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(format!(
        "configuration OK: {} target(s)",
        config.targets().len()
    ))
}

/// Runs the exporter until `shutdown` resolves. Logging must already be set up.
pub async fn run_exporter(
    args: ExporterArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let config = Config::from_args(&args, &ProcessEnv)?;
    let web_config = match config.web().web_config_file() {
        Some(path) => Some(
            WebConfigRuntime::load(path).map_err(|source| RunError::WebConfig {
                path: path.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let store = match config.state_file() {
        Some(path) => {
            let (store, err) = tracker::StateStore::open_exclusive(path)?;
            if let Some(e) = err {
                tracing::warn!(error = %e, "state file");
            }
            store
        }
        None => tracker::StateStore::in_memory(),
    };
    tracing::info!(
        version = crate::sys::version::VERSION_LONG,
        "starting bitbucket-zdu-exporter"
    );
    let nofile = crate::sys::fds::raise_nofile_limit();
    tracing::info!(
        before = %fmt_limit(nofile.before),
        after = %fmt_limit(nofile.after),
        hard = %fmt_limit(nofile.hard),
        "open-files limit (RLIMIT_NOFILE): soft raised to the hard limit where it was lower"
    );
    let runtime = Exporter::start(
        &config,
        Arc::new(store),
        Some(args.clone()),
        Some(Box::new(ProcessEnv)),
    )?;
    let listeners = server::bind_all(config.web().listen_addresses()).await?;
    let tls = web_config.as_ref().is_some_and(|w| w.tls_enabled());
    for l in &listeners {
        tracing::info!(address = %l.local_addr()?, tls, "listening");
    }
    spawn_sighup_reload(runtime.clone());
    let router = server::router(
        runtime.clone(),
        config.web().telemetry_path(),
        config.web().max_requests(),
    );
    // The server's share of the descriptors: at the cap an idle connection makes room, so
    // a fleet's polls can never leave /metrics or /-/healthy without a descriptor.
    let defaults = server::ServeOptions::default();
    let opts = server::ServeOptions {
        web_config,
        max_connections: defaults.max_connections.min(runtime.fd_budget().serve),
        ..defaults
    };
    let served = server::serve_with(listeners, router, shutdown, SHUTDOWN_GRACE, opts).await;
    runtime.shutdown();
    Ok(served?)
}

fn fmt_limit(l: Option<u64>) -> String {
    l.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

fn spawn_sighup_reload(runtime: Arc<Exporter>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading configuration");
            let _ = runtime.reload().await;
        }
    });
}

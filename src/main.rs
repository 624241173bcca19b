//! Command-line entry point; all logic lives in the library.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use bitbucket_zdu_exporter::config::{Cli, Command, Config, ProcessEnv};
use bitbucket_zdu_exporter::{
    app, client, demo, logging, server, shutdown_signal, simulator, tracker, web_config,
};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    client::install_crypto_provider();
    match cli.command {
        Some(Command::Simulate(args)) => {
            logging::init(cli.exporter.log_level, cli.exporter.log_format);
            simulator::run(args, shutdown_signal()).await?;
            Ok(())
        }
        Some(Command::Demo(args)) => {
            logging::init(cli.exporter.log_level, cli.exporter.log_format);
            demo::run(args, shutdown_signal()).await?;
            Ok(())
        }
        None => run_exporter(cli.exporter).await,
    }
}

async fn run_exporter(args: bitbucket_zdu_exporter::config::ExporterArgs) -> anyhow::Result<()> {
    let config = Config::from_args(&args, &ProcessEnv);
    if args.config_check {
        return match config {
            Ok(c) => {
                if let Some(path) = &c.web.config_file {
                    web_config::WebConfig::load(path)
                        .with_context(|| format!("web configuration {} invalid", path.display()))?;
                }
                println!("configuration OK: {} target(s)", c.targets.len());
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e).context("configuration invalid")),
        };
    }
    logging::init(args.log_level, args.log_format);
    let config = config.context("invalid configuration")?;
    let web_config = match &config.web.config_file {
        Some(path) => Some(
            web_config::WebConfigRuntime::load(path)
                .with_context(|| format!("invalid --web.config.file {}", path.display()))?,
        ),
        None => None,
    };
    let store = match &config.state_file {
        Some(path) => {
            let (store, err) = tracker::StateStore::open(path);
            if let Some(e) = err {
                tracing::warn!(error = %e, "state file");
            }
            store
        }
        None => tracker::StateStore::in_memory(),
    };
    tracing::info!(
        version = bitbucket_zdu_exporter::build::VERSION_LONG,
        "starting bitbucket-zdu-exporter"
    );
    let runtime = app::Runtime::start(
        &config,
        Arc::new(store),
        Some(args.clone()),
        Some(Box::new(ProcessEnv)),
    )
    .context("cannot start")?;
    let listeners = server::bind_all(&config.web.listen_addresses).await?;
    let tls = web_config.as_ref().is_some_and(|w| w.tls_enabled());
    for l in &listeners {
        tracing::info!(address = %l.local_addr()?, tls, "listening");
    }
    spawn_sighup_reload(runtime.clone());
    let router = server::app(
        runtime.clone(),
        &config.web.telemetry_path,
        config.web.max_requests,
    );
    let opts = server::ServeOptions {
        web_config,
        ..server::ServeOptions::default()
    };
    server::serve_with(
        listeners,
        router,
        shutdown_signal(),
        Duration::from_secs(5),
        opts,
    )
    .await?;
    runtime.shutdown();
    Ok(())
}

fn spawn_sighup_reload(runtime: Arc<app::Runtime>) {
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

//! `demo`: the simulator and the exporter in one process, the embedded default that needs no
//! Bitbucket. Prints the URLs to open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::config::{Config, ConfigError, TargetConfig};
use crate::simulator::{Scenario, SimulateArgs, Simulator};

/// Flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address of the exporter.
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9879")]
    pub listen_address: SocketAddr,
    /// Scenario the simulator plays.
    #[arg(long, value_enum, default_value_t = Scenario::RollingUpgrade)]
    pub scenario: Scenario,
    /// Speed factor of the simulator.
    #[arg(long, default_value_t = 2.0)]
    pub speed: f64,
    /// Poll interval of the exporter.
    #[arg(long = "poll.interval", default_value = "5s")]
    pub poll_interval: crate::sys::duration::PromDuration,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// The product the simulator speaks (and the demo target is): bitbucket, confluence or
    /// jira.
    #[arg(long, value_enum, default_value_t = crate::model::Product::Bitbucket)]
    pub product: crate::model::Product,
}

/// Errors of `demo`.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator could not start.
    #[error(transparent)]
    Sim(#[from] crate::simulator::SimError),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    /// The demo's own configuration is invalid (a bad `--poll.interval`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The exporter could not start.
    #[error(transparent)]
    Exporter(#[from] crate::app::ExporterError),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let sim_args = SimulateArgs {
        listen_address: "127.0.0.1:0".parse().expect("static"),
        scenario: args.scenario,
        speed: args.speed,
        nodes: args.nodes,
        product: args.product,
        ..SimulateArgs::default()
    };
    let sim = Simulator::new(&sim_args)?;
    let sim_listener = tokio::net::TcpListener::bind(sim_args.listen_address).await?;
    let sim_addr = sim_listener.local_addr()?;
    let driver = sim.spawn_driver();
    let router = sim.router();
    let sim_server = tokio::spawn(async move { axum::serve(sim_listener, router).await });

    let interval = args.poll_interval.0.max(Duration::from_millis(100));
    let target = TargetConfig::builder("demo", format!("http://{sim_addr}/"))
        .poll_interval(interval)
        .timeout(interval.min(Duration::from_secs(5)))
        .product(args.product)
        .build()?;
    let config = Config::builder(vec![target])
        .listen_addresses(vec![args.listen_address])
        .build()?;
    let store = Arc::new(crate::tracker::StateStore::in_memory());
    let runtime = crate::app::Exporter::start(&config, store, None, None)?;
    let listeners = crate::server::bind_all(config.web().listen_addresses()).await?;
    let bound = listeners[0].local_addr()?;
    println!(
        "Demo running: simulated {} cluster ({:?}, speed {}x) at http://{sim_addr}/",
        args.product.title(),
        args.scenario,
        args.speed
    );
    println!("Open http://{bound}/ (landing page) or http://{bound}/metrics. Ctrl-C to stop.");
    let router = crate::server::router(
        runtime.clone(),
        config.web().telemetry_path(),
        config.web().max_requests(),
    );
    let r = crate::server::serve(listeners, router, shutdown, Duration::from_secs(5)).await;
    runtime.shutdown();
    driver.abort();
    sim_server.abort();
    Ok(r?)
}

//! `simulate`: the built-in simulator ([`crate::simulator`]) served on its own, a fake
//! Bitbucket ZDU API to point an exporter at.

use crate::simulator::{SimError, SimulateArgs, Simulator};

/// Runs `simulate` until `shutdown` resolves.
pub async fn run(
    args: SimulateArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let sim = Simulator::new(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .map_err(|e| SimError::Io(format!("cannot listen on {}: {e}", args.listen_address)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SimError::Io(e.to_string()))?;
    let driver = sim.spawn_driver();
    tracing::info!(address = %addr, scenario = ?args.scenario, speed = args.speed, "simulator listening");
    println!(
        "Simulated Bitbucket ZDU API on http://{addr}{}/rest/zdu/cluster",
        args.context_path
    );
    let r = axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown)
        .await;
    driver.abort();
    r.map_err(|e| SimError::Io(e.to_string()))
}

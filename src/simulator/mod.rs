//! The built-in simulator: a fake Bitbucket ZDU API on loopback that derives the cluster state
//! the way Bitbucket does, walks scripted scenarios (a whole rolling upgrade, stuck MIXED,
//! failed finalization, a node in ERROR, Kubernetes ghost nodes), and accepts
//! `POST /rest/zdu/start|cancel|approve` with Bitbucket's 409 rules so an admin can rehearse.
//!
//! The `simulate` command runs it ([`crate::cli::simulate`]). Besides the Bitbucket paths it has a few `/sim/...` control endpoints (upgrade one node, put
//! a node in a state) that Bitbucket does not have.
//!
//! A test double, compiled only with the `simulator` cargo feature (on by default); the
//! exporter's own modules never depend on it. Modules: [`cluster`] is the state model (pure,
//! no I/O), `script` plays the scenarios over time, `api` is the HTTP surface.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::secret::SecretSource;

mod api;
pub mod cluster;
pub mod product;
mod script;

pub use cluster::{next_version, Conflict, Finalization, SimCluster, SimNode};
pub use script::NodeTimings;

/// Scripted scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// A healthy cluster on one version; only users and tasks move. Use POST /rest/zdu/start
    /// and /sim/nodes/{id}/upgrade to rehearse by hand.
    Stable,
    /// Whole rolling upgrades, one after the other: every cluster state, nodes draining,
    /// stopping, restarting on the new version and rejoining, approval, finalization.
    RollingUpgrade,
    /// One node upgraded, the rest never: MIXED forever.
    StuckMixed,
    /// All nodes upgraded, approved, finalization fails: UPGRADE_TASKS_FAILED.
    TasksFailed,
    /// One node upgraded, another in ERROR: held in MIXED.
    NodeError,
    /// Kubernetes-style upgrade: pods come back with new IPs and leave OFFLINE ghosts.
    GhostNodes,
    /// Every request refused as on a non-clustered instance.
    NotClustered,
}

/// Flags of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address to listen on (loopback by default).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "127.0.0.1:7990"
    )]
    pub listen_address: SocketAddr,
    /// Scenario to play.
    #[arg(long, value_enum, default_value_t = Scenario::RollingUpgrade)]
    pub scenario: Scenario,
    /// Speed factor: 10 plays a scenario ten times faster.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Number of cluster nodes (2 to 12).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Context path to serve the API under (e.g. /bitbucket).
    #[arg(long = "context-path", default_value = "")]
    pub context_path: String,
    /// Require HTTP Basic auth with this user (password from --password-file or SIM_PASSWORD).
    #[arg(long)]
    pub username: Option<String>,
    /// File holding the password required with --username.
    #[arg(long = "password-file")]
    pub password_file: Option<std::path::PathBuf>,
    /// Which node answers GET /rest/zdu/state: a node index, or -1 for a random live node
    /// (as behind a load balancer).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub responder: i64,
    /// The product whose API to serve: bitbucket, confluence (the same /rest/zdu paths with
    /// finalization fields, no DRAINING, null node states) or jira (/rest/api/2/cluster/...).
    #[arg(long, value_enum, default_value_t = crate::model::Product::Bitbucket)]
    pub product: crate::model::Product,
}

impl Default for SimulateArgs {
    fn default() -> Self {
        SimulateArgs {
            listen_address: "127.0.0.1:7990".parse().expect("static"),
            scenario: Scenario::RollingUpgrade,
            speed: 1.0,
            nodes: 3,
            context_path: String::new(),
            username: None,
            password_file: None,
            responder: -1,
            product: crate::model::Product::Bitbucket,
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    cluster: Mutex<SimCluster>,
    speed: f64,
    context_path: String,
    auth: Option<(String, SecretSource)>,
    responder: i64,
    timings: NodeTimings,
    scenario: Scenario,
    product: crate::model::Product,
}

impl Simulator {
    /// A simulator for `args` (the driver is not started; see [`Simulator::spawn_driver`]).
    pub fn new(args: &SimulateArgs) -> Result<Arc<Self>, crate::secret::SecretError> {
        let auth = match &args.username {
            Some(u) => {
                let src = match &args.password_file {
                    Some(p) => SecretSource::file(p)?,
                    None => SecretSource::env(
                        "SIM_PASSWORD",
                        std::env::var("SIM_PASSWORD").unwrap_or_default(),
                    )?,
                };
                Some((u.clone(), src))
            }
            None => None,
        };
        let mut cluster = SimCluster::for_product(args.product, args.nodes.clamp(2, 12), "8.19.0");
        cluster.not_clustered = args.scenario == Scenario::NotClustered;
        Ok(Arc::new(Simulator {
            cluster: Mutex::new(cluster),
            speed: if args.speed > 0.0 { args.speed } else { 1.0 },
            context_path: args.context_path.trim_end_matches('/').to_string(),
            auth,
            responder: args.responder,
            timings: NodeTimings::default(),
            scenario: args.scenario,
            product: args.product,
        }))
    }

    /// Reads or changes the cluster (tests use this to set exact states).
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut SimCluster) -> R) -> R {
        let mut c = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.speed)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.scaled(d)).await;
    }

    /// Starts the scenario script and the users/tasks random walk.
    pub fn spawn_driver(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sim = self.clone();
        tokio::spawn(async move {
            let walker = sim.clone();
            let walk = tokio::spawn(async move { walker.random_walk().await });
            sim.run_script().await;
            let _ = walk.await;
        })
    }
}

/// Errors of `simulate`.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    /// The simulator's password cannot be read.
    Secret(#[from] crate::secret::SecretError),
    #[error("{0}")]
    /// Binding or serving failed.
    Io(String),
}

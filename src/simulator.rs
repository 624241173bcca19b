//! The built-in simulator: a fake Bitbucket ZDU API on loopback that derives the cluster state
//! the way Bitbucket does, walks scripted scenarios (a whole rolling upgrade, stuck MIXED,
//! failed finalization, a node in ERROR, Kubernetes ghost nodes), and accepts
//! `POST /rest/zdu/start|cancel|approve` with Bitbucket's 409 rules so an admin can rehearse.
//!
//! Besides the Bitbucket paths it has a few `/sim/...` control endpoints (upgrade one node, put
//! a node in a state) that Bitbucket does not have.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Args, ValueEnum};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::{ClusterState, NodeState};
use crate::secret::SecretSource;

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
    #[arg(long = "listen-address", default_value = "127.0.0.1:7990")]
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
        }
    }
}

/// One simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNode {
    pub id: String,
    pub name: String,
    pub ip: String,
    pub port: u16,
    pub state: NodeState,
    pub version: Option<String>,
    pub build_number: Option<String>,
    pub users: Option<u64>,
    pub tasks: Option<u64>,
}

/// Finalization ("upgrade tasks") progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalization {
    Idle,
    Running,
    Failed,
}

/// The simulated cluster. Its state is derived on every read, as Bitbucket does.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCluster {
    pub upgrade_mode: bool,
    pub original_version: Option<String>,
    pub nodes: Vec<SimNode>,
    pub finalization: Finalization,
    pub not_clustered: bool,
}

/// An action that is not legal in the current state (Bitbucket answers 409, empty body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} is not allowed in state {state}")]
pub struct Conflict {
    pub action: &'static str,
    pub state: String,
}

fn build_number(version: &str) -> String {
    // 8.19.1 -> 8019001, like Bitbucket's build numbers.
    let parts: Vec<u64> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or(0);
    format!("{}", get(0) * 1_000_000 + get(1) * 1_000 + get(2))
}

/// The version after `v` (patch + 1).
pub fn next_version(v: &str) -> String {
    let mut parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    while parts.len() < 3 {
        parts.push(0);
    }
    parts[2] += 1;
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

impl SimCluster {
    /// `n` ACTIVE nodes on `version`, named like Helm StatefulSet pods.
    pub fn new(n: usize, version: &str) -> Self {
        let nodes = (0..n)
            .map(|i| SimNode {
                id: format!(
                    "{:08x}-0000-4000-8000-{:012x}",
                    0x5eed0000u32 + i as u32,
                    i + 1
                ),
                name: format!("bitbucket-{i}"),
                ip: format!("10.0.0.{}", 10 + i),
                port: 5701,
                state: NodeState::Active,
                version: Some(version.to_string()),
                build_number: Some(build_number(version)),
                users: Some(20 + 7 * i as u64),
                tasks: Some(3 + i as u64),
            })
            .collect();
        SimCluster {
            upgrade_mode: false,
            original_version: None,
            nodes,
            finalization: Finalization::Idle,
            not_clustered: false,
        }
    }

    /// The cluster state, derived in Bitbucket's order.
    pub fn state(&self) -> ClusterState {
        if self.finalization == Finalization::Running {
            return ClusterState::RunningUpgradeTasks;
        }
        if !self.upgrade_mode {
            return if self.finalization == Finalization::Failed {
                ClusterState::UpgradeTasksFailed
            } else {
                ClusterState::Stable
            };
        }
        if self.nodes.iter().any(|n| n.state == NodeState::Error) {
            return ClusterState::Mixed;
        }
        let mut versions: Vec<Option<&str>> = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Offline)
            .map(|n| n.version.as_deref())
            .collect();
        versions.sort();
        versions.dedup();
        if versions.len() > 1 {
            return ClusterState::Mixed;
        }
        match versions.first() {
            None => ClusterState::ReadyToUpgrade,
            Some(v) if *v == self.original_version.as_deref() => ClusterState::ReadyToUpgrade,
            Some(_) => ClusterState::ReadyToRunUpgradeTasks,
        }
    }

    fn conflict(&self, action: &'static str) -> Conflict {
        Conflict {
            action,
            state: self.state().to_string(),
        }
    }

    /// `POST /start`: from STABLE only.
    pub fn start(&mut self) -> Result<(), Conflict> {
        if self.state() != ClusterState::Stable {
            return Err(self.conflict("start"));
        }
        self.upgrade_mode = true;
        self.finalization = Finalization::Idle;
        self.original_version = self
            .nodes
            .iter()
            .find(|n| n.state != NodeState::Offline)
            .and_then(|n| n.version.clone());
        Ok(())
    }

    /// `POST /cancel`: from READY_TO_UPGRADE only.
    pub fn cancel(&mut self) -> Result<(), Conflict> {
        if self.state() != ClusterState::ReadyToUpgrade {
            return Err(self.conflict("cancel"));
        }
        self.upgrade_mode = false;
        self.original_version = None;
        self.drop_ghosts();
        Ok(())
    }

    /// `POST /approve`: from READY_TO_RUN_UPGRADE_TASKS only; finalization starts.
    pub fn approve(&mut self) -> Result<(), Conflict> {
        if self.state() != ClusterState::ReadyToRunUpgradeTasks {
            return Err(self.conflict("approve"));
        }
        self.finalization = Finalization::Running;
        Ok(())
    }

    /// Ends finalization: upgrade mode off, ghosts gone, STABLE or UPGRADE_TASKS_FAILED.
    pub fn finish_finalization(&mut self, success: bool) {
        self.finalization = if success {
            Finalization::Idle
        } else {
            Finalization::Failed
        };
        self.upgrade_mode = false;
        self.original_version = None;
        self.drop_ghosts();
    }

    fn drop_ghosts(&mut self) {
        let live: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.state != NodeState::Offline)
            .map(|n| n.name.clone())
            .collect();
        self.nodes
            .retain(|n| !(n.state == NodeState::Offline && live.contains(&n.name)));
    }

    /// The `/cluster` JSON, with `local` set for node `local`.
    pub fn cluster_json(&self, local: Option<usize>, base: &str) -> Value {
        let mut nodes: Vec<(usize, &SimNode)> = self.nodes.iter().enumerate().collect();
        nodes.sort_by(|a, b| (&a.1.name, &a.1.ip).cmp(&(&b.1.name, &b.1.ip)));
        json!({
            "upgradeModeEnabled": self.upgrade_mode,
            "state": self.state().as_str(),
            "originalVersion": self.original_version,
            "nodes": nodes.iter().map(|(i, n)| node_json(n, Some(*i) == local, base)).collect::<Vec<_>>(),
            "links": [{"rel": "self", "href": format!("{base}/rest/zdu/cluster")}],
        })
    }
}

fn node_json(n: &SimNode, local: bool, base: &str) -> Value {
    json!({
        "id": n.id,
        "name": n.name,
        "ipAddress": n.ip,
        "state": n.state.as_str(),
        "tasksTotal": n.tasks,
        "activeUserCount": n.users,
        "buildNumber": n.build_number,
        "version": n.version,
        "local": local,
        "portNumber": n.port,
        "links": [{"rel": "self", "href": format!("{base}/rest/zdu/nodes/{}", n.id)}],
    })
}

/// Timings of one node's upgrade, before the speed factor.
#[derive(Debug, Clone, Copy)]
pub struct NodeTimings {
    pub drain: Duration,
    pub terminate: Duration,
    pub install: Duration,
    pub start: Duration,
}

impl Default for NodeTimings {
    fn default() -> Self {
        NodeTimings {
            drain: Duration::from_secs(20),
            terminate: Duration::from_secs(5),
            install: Duration::from_secs(20),
            start: Duration::from_secs(30),
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
        let mut cluster = SimCluster::new(args.nodes.clamp(2, 12), "8.19.0");
        cluster.not_clustered = args.scenario == Scenario::NotClustered;
        Ok(Arc::new(Simulator {
            cluster: Mutex::new(cluster),
            speed: if args.speed > 0.0 { args.speed } else { 1.0 },
            context_path: args.context_path.trim_end_matches('/').to_string(),
            auth,
            responder: args.responder,
            timings: NodeTimings::default(),
            scenario: args.scenario,
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

    /// The router of the fake API.
    pub fn router(self: &Arc<Self>) -> Router {
        let p = &self.context_path;
        Router::new()
            .route(&format!("{p}/rest/zdu/cluster"), get(get_cluster))
            .route(&format!("{p}/rest/zdu/state"), get(get_state))
            .route(&format!("{p}/rest/zdu/nodes/{{id}}"), get(get_node))
            .route(&format!("{p}/rest/zdu/start"), post(post_start))
            .route(&format!("{p}/rest/zdu/cancel"), post(post_cancel))
            .route(&format!("{p}/rest/zdu/approve"), post(post_approve))
            .route("/sim/nodes/{id}/upgrade", post(sim_upgrade))
            .route("/sim/nodes/{id}/state", post(sim_state))
            .route("/", get(sim_index))
            .with_state(self.clone())
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

    async fn random_walk(self: Arc<Self>) {
        loop {
            self.sleep(Duration::from_secs(2)).await;
            self.with_cluster(|c| {
                let mut rng = rand::rng();
                for n in c.nodes.iter_mut().filter(|n| n.state == NodeState::Active) {
                    let users = n.users.unwrap_or(0) as i64 + rng.random_range(-3..=3);
                    n.users = Some(users.clamp(5, 80) as u64);
                    let tasks = n.tasks.unwrap_or(0) as i64 + rng.random_range(-2..=2);
                    n.tasks = Some(tasks.clamp(0, 15) as u64);
                }
            });
        }
    }

    async fn run_script(self: &Arc<Self>) {
        match self.scenario {
            Scenario::Stable | Scenario::NotClustered => std::future::pending::<()>().await,
            Scenario::RollingUpgrade => loop {
                self.full_upgrade(false, true).await;
            },
            Scenario::GhostNodes => loop {
                self.full_upgrade(true, true).await;
            },
            Scenario::TasksFailed => {
                self.full_upgrade(false, false).await;
                std::future::pending::<()>().await
            }
            Scenario::StuckMixed | Scenario::NodeError => {
                self.sleep(Duration::from_secs(10)).await;
                let _ = self.with_cluster(|c| c.start());
                let target = self.with_cluster(|c| {
                    next_version(c.original_version.as_deref().unwrap_or("8.19.0"))
                });
                self.sleep(Duration::from_secs(10)).await;
                self.upgrade_node(0, &target, false).await;
                if self.scenario == Scenario::NodeError {
                    self.sleep(Duration::from_secs(10)).await;
                    self.with_cluster(|c| {
                        if let Some(n) = c.nodes.get_mut(1) {
                            n.state = NodeState::Error;
                        }
                    });
                }
                std::future::pending::<()>().await
            }
        }
    }

    /// One whole rolling upgrade: start, every node in turn, approval, finalization.
    async fn full_upgrade(self: &Arc<Self>, new_ips: bool, success: bool) {
        self.sleep(Duration::from_secs(20)).await;
        if self.with_cluster(|c| c.start()).is_err() {
            self.sleep(Duration::from_secs(10)).await;
            return;
        }
        let target =
            self.with_cluster(|c| next_version(c.original_version.as_deref().unwrap_or("8.19.0")));
        self.sleep(Duration::from_secs(15)).await;
        let names: Vec<String> =
            self.with_cluster(|c| c.nodes.iter().map(|n| n.name.clone()).collect());
        for name in names {
            let idx = self.with_cluster(|c| {
                c.nodes
                    .iter()
                    .position(|n| n.name == name && n.state != NodeState::Offline)
            });
            if let Some(idx) = idx {
                self.upgrade_node(idx, &target, new_ips).await;
            }
            self.sleep(Duration::from_secs(5)).await;
        }
        // Waiting for an admin to approve.
        self.sleep(Duration::from_secs(30)).await;
        if self.with_cluster(|c| c.approve()).is_ok() {
            self.sleep(Duration::from_secs(15)).await;
            self.with_cluster(|c| c.finish_finalization(success));
        }
        self.sleep(Duration::from_secs(30)).await;
    }

    /// Drains, stops, upgrades and restarts node `idx` on `version`. With `new_ip` the node
    /// comes back as a new entry with a new IP, leaving an OFFLINE ghost (as on Kubernetes).
    pub async fn upgrade_node(self: &Arc<Self>, idx: usize, version: &str, new_ip: bool) {
        let t = self.timings;
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(idx) {
                n.state = NodeState::Draining;
            }
        });
        let steps = 5u32;
        for step in 1..=steps {
            self.sleep(t.drain / steps).await;
            self.with_cluster(|c| {
                if let Some(n) = c.nodes.get_mut(idx) {
                    let left = (steps - step) as f64 / (steps - step + 1) as f64;
                    n.users = n.users.map(|u| (u as f64 * left).floor() as u64);
                    n.tasks = n.tasks.map(|u| (u as f64 * left).floor() as u64);
                }
            });
        }
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(idx) {
                n.state = NodeState::Terminating;
                n.users = Some(0);
                n.tasks = Some(0);
            }
        });
        self.sleep(t.terminate).await;
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(idx) {
                n.state = NodeState::Offline;
                n.version = None;
                n.build_number = None;
                n.users = None;
                n.tasks = None;
            }
        });
        self.sleep(t.install).await;
        let live_idx = self.with_cluster(|c| {
            let n = c.nodes.get(idx)?.clone();
            let mut fresh = n.clone();
            fresh.state = NodeState::Starting;
            fresh.version = Some(version.to_string());
            fresh.build_number = Some(build_number(version));
            fresh.users = Some(0);
            fresh.tasks = Some(0);
            if new_ip {
                let last: u32 =
                    n.ip.rsplit('.')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(10);
                fresh.ip = format!("10.0.1.{}", (last + 37) % 250 + 2);
                fresh.id = format!("{}-r", n.id);
                c.nodes.push(fresh);
                Some(c.nodes.len() - 1)
            } else {
                c.nodes[idx] = fresh;
                Some(idx)
            }
        });
        let Some(live_idx) = live_idx else { return };
        self.sleep(t.start).await;
        self.with_cluster(|c| {
            if let Some(n) = c.nodes.get_mut(live_idx) {
                n.state = NodeState::Active;
                n.users = Some(8);
                n.tasks = Some(1);
            }
        });
    }

    /// `Some(response)` when the request must be refused.
    fn check_auth(&self, headers: &HeaderMap) -> Option<Response> {
        if self.with_cluster(|c| c.not_clustered) {
            return Some(error_response(
                StatusCode::UNAUTHORIZED,
                "Rolling upgrades feature requires a clustered installation.",
            ));
        }
        let (user, pw) = self.auth.as_ref()?;
        let expected = pw
            .get()
            .map(|p| basic(user, p.expose()))
            .unwrap_or_default();
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !expected.is_empty() && constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            None
        } else {
            Some(error_response(
                StatusCode::UNAUTHORIZED,
                "Authentication failed. Please check your credentials and try again.",
            ))
        }
    }

    fn local_index(&self) -> Option<usize> {
        self.with_cluster(|c| {
            let live: Vec<usize> = c
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    matches!(
                        n.state,
                        NodeState::Active | NodeState::Draining | NodeState::Error
                    )
                })
                .map(|(i, _)| i)
                .collect();
            if self.responder >= 0 {
                let i = self.responder as usize;
                live.contains(&i).then_some(i)
            } else if live.is_empty() {
                None
            } else {
                Some(live[rand::rng().random_range(0..live.len())])
            }
        })
    }

    fn base(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}{}", self.context_path)
    }
}

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", base64_encode(format!("{user}:{pw}").as_bytes()))
}

/// Standard base64 (RFC 4648) encoding.
pub fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Compares in time independent of where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"context": null, "message": message, "exceptionName": null}]})),
    )
        .into_response()
}

type SimState = State<Arc<Simulator>>;

async fn get_cluster(State(sim): SimState, headers: HeaderMap) -> Response {
    if let Some(r) = sim.check_auth(&headers) {
        return r;
    }
    let local = sim.local_index();
    let base = sim.base(&headers);
    Json(sim.with_cluster(|c| c.cluster_json(local, &base))).into_response()
}

async fn get_state(State(sim): SimState, headers: HeaderMap) -> Response {
    if let Some(r) = sim.check_auth(&headers) {
        return r;
    }
    let Some(local) = sim.local_index() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is not running\n").into_response();
    };
    let base = sim.base(&headers);
    Json(sim.with_cluster(|c| {
        json!({"state": c.state().as_str(), "buildInfo": node_json(&c.nodes[local], true, &base)})
    }))
    .into_response()
}

async fn get_node(State(sim): SimState, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = sim.check_auth(&headers) {
        return r;
    }
    let local = sim.local_index();
    let base = sim.base(&headers);
    sim.with_cluster(|c| match c.nodes.iter().position(|n| n.id == id) {
        Some(i) => Json(node_json(&c.nodes[i], Some(i) == local, &base)).into_response(),
        None => error_response(StatusCode::NOT_FOUND, &format!("Node {id} does not exist.")),
    })
}

async fn post_action(
    sim: Arc<Simulator>,
    headers: HeaderMap,
    action: fn(&mut SimCluster) -> Result<(), Conflict>,
) -> Response {
    if let Some(r) = sim.check_auth(&headers) {
        return r;
    }
    let result = sim.with_cluster(action);
    match result {
        Ok(()) => {
            let running = sim.with_cluster(|c| c.finalization == Finalization::Running);
            if running {
                let s = sim.clone();
                tokio::spawn(async move {
                    s.sleep(Duration::from_secs(15)).await;
                    s.with_cluster(|c| c.finish_finalization(true));
                });
            }
            let base = sim.base(&headers);
            let local = sim.local_index();
            Json(sim.with_cluster(|c| c.cluster_json(local, &base))).into_response()
        }
        Err(e) => {
            tracing::info!(error = %e, "simulator: 409");
            StatusCode::CONFLICT.into_response()
        }
    }
}

async fn post_start(State(sim): SimState, headers: HeaderMap) -> Response {
    post_action(sim, headers, SimCluster::start).await
}

async fn post_cancel(State(sim): SimState, headers: HeaderMap) -> Response {
    post_action(sim, headers, SimCluster::cancel).await
}

async fn post_approve(State(sim): SimState, headers: HeaderMap) -> Response {
    post_action(sim, headers, SimCluster::approve).await
}

#[derive(Debug, Deserialize)]
struct UpgradeParams {
    version: Option<String>,
    #[serde(default)]
    new_ip: bool,
}

async fn sim_upgrade(
    State(sim): SimState,
    Path(id): Path<String>,
    Query(q): Query<UpgradeParams>,
) -> Response {
    let found = sim.with_cluster(|c| {
        let idx = c.nodes.iter().position(|n| n.id == id || n.name == id)?;
        let from = c
            .original_version
            .clone()
            .or_else(|| c.nodes[idx].version.clone())
            .unwrap_or_else(|| "8.19.0".into());
        Some((
            idx,
            q.version.clone().unwrap_or_else(|| next_version(&from)),
        ))
    });
    let Some((idx, version)) = found else {
        return (StatusCode::NOT_FOUND, "no such node\n").into_response();
    };
    let message = format!("upgrading node {id} to {version}\n");
    let s = sim.clone();
    tokio::spawn(async move { s.upgrade_node(idx, &version, q.new_ip).await });
    (StatusCode::ACCEPTED, message).into_response()
}

#[derive(Debug, Deserialize)]
struct StateParams {
    state: String,
}

async fn sim_state(
    State(sim): SimState,
    Path(id): Path<String>,
    Query(q): Query<StateParams>,
) -> Response {
    let ok = sim.with_cluster(|c| {
        c.nodes
            .iter_mut()
            .find(|n| n.id == id || n.name == id)
            .map(|n| n.state = NodeState::parse(&q.state))
            .is_some()
    });
    if ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::NOT_FOUND, "no such node\n").into_response()
    }
}

async fn sim_index(State(sim): SimState) -> String {
    let (state, nodes) = sim.with_cluster(|c| {
        (
            c.state(),
            c.nodes
                .iter()
                .map(|n| {
                    format!(
                        "  {} {} {} {}",
                        n.name,
                        n.ip,
                        n.state,
                        n.version.as_deref().unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    });
    format!(
        "bitbucket-zdu-exporter simulator ({:?})\ncluster state: {state}\nnodes:\n{nodes}\n\n\
         API: GET {p}/rest/zdu/cluster, {p}/rest/zdu/state, {p}/rest/zdu/nodes/ID; POST {p}/rest/zdu/start|cancel|approve\n\
         Control: POST /sim/nodes/NAME/upgrade[?version=X&new_ip=true], POST /sim/nodes/NAME/state?state=ERROR\n",
        sim.scenario,
        p = sim.context_path
    )
}

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

/// Errors of `simulate`.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error("{0}")]
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_derivation_follows_bitbucket() {
        let mut c = SimCluster::new(3, "8.19.0");
        assert_eq!(c.state(), ClusterState::Stable);
        assert!(c.cancel().is_err());
        assert!(c.approve().is_err());
        c.start().unwrap();
        assert_eq!(c.state(), ClusterState::ReadyToUpgrade);
        assert!(c.start().is_err());
        c.nodes[0].state = NodeState::Offline;
        c.nodes[0].version = None;
        assert_eq!(
            c.state(),
            ClusterState::ReadyToUpgrade,
            "OFFLINE takes no part"
        );
        c.nodes[0].state = NodeState::Active;
        c.nodes[0].version = Some("8.19.1".into());
        assert_eq!(c.state(), ClusterState::Mixed);
        assert!(c.cancel().is_err(), "MIXED cannot be cancelled");
        for n in &mut c.nodes {
            n.version = Some("8.19.1".into());
        }
        assert_eq!(c.state(), ClusterState::ReadyToRunUpgradeTasks);
        c.nodes[2].state = NodeState::Error;
        assert_eq!(c.state(), ClusterState::Mixed, "ERROR holds MIXED");
        assert!(c.approve().is_err());
        c.nodes[2].state = NodeState::Active;
        c.approve().unwrap();
        assert_eq!(c.state(), ClusterState::RunningUpgradeTasks);
        c.finish_finalization(false);
        assert_eq!(c.state(), ClusterState::UpgradeTasksFailed);
        c.finalization = Finalization::Idle;
        assert_eq!(c.state(), ClusterState::Stable);
    }

    #[test]
    fn helpers() {
        assert_eq!(base64_encode(b"zdu:pw"), "emR1OnB3");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert_eq!(next_version("8.19.9"), "8.19.10");
        assert_eq!(build_number("8.19.1"), "8019001");
    }
}

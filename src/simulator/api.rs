//! The HTTP surface of the simulator: Bitbucket's `/rest/zdu/...` paths (with its auth and
//! error bodies) and the `/sim/...` control endpoints.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use std::time::Duration;

use super::cluster::{next_version, node_json, Conflict, Finalization, SimCluster};
use super::{product, Simulator};
use crate::model::{NodeState, Product};

impl Simulator {
    /// The router of the fake API.
    pub fn router(self: &Arc<Self>) -> Router {
        let p = &self.context_path;
        let router = match self.product {
            Product::Jira => Router::new()
                .route(
                    &format!("{p}/rest/api/2/cluster/zdu/state"),
                    get(get_jira_state),
                )
                .route(
                    &format!("{p}/rest/api/2/cluster/nodes"),
                    get(get_jira_nodes),
                ),
            _ => Router::new(),
        };
        router
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
    format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{pw}").as_bytes())
    )
}

/// Compares in time independent of where the inputs differ (`subtle`); inputs of different
/// lengths are unequal.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
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
    Json(sim.with_cluster(|c| {
        let json = c.cluster_json(local, &base);
        match sim.product {
            Product::Confluence => product::confluence_cluster(c, json),
            _ => json,
        }
    }))
    .into_response()
}

/// Jira's `GET /rest/api/2/cluster/zdu/state`.
async fn get_jira_state(State(sim): SimState, headers: HeaderMap) -> Response {
    if let Some(r) = sim.check_auth(&headers) {
        return r;
    }
    Json(sim.with_cluster(|c| product::jira_state(c))).into_response()
}

/// Jira's `GET /rest/api/2/cluster/nodes`: 405 on a non-Data-Center instance.
async fn get_jira_nodes(State(sim): SimState, headers: HeaderMap) -> Response {
    if sim.with_cluster(|c| c.not_clustered) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({"errorMessages": ["You don't have Jira Data Center."], "errors": {}})),
        )
            .into_response();
    }
    if let Some(r) = sim.check_auth(&headers) {
        return r;
    }
    Json(sim.with_cluster(|c| product::jira_nodes(c))).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(basic("zdu", "pw"), "Basic emR1OnB3");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}

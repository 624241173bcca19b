//! Polling by product: which upstream calls make one observation, and how each product's
//! error answers map onto the failure reasons.
//!
//! - Bitbucket: `GET /rest/zdu/cluster` and `GET /rest/zdu/state`, as always.
//! - Confluence: the same two calls (the same rolling-upgrade plugin); the `/cluster` body
//!   is read once more for `hasFinalizationTasks` and per-node finalization errors
//!   ([`extras::confluence`]).
//! - Jira: `GET /rest/api/2/cluster/zdu/state` and `GET /rest/api/2/cluster/nodes`, folded by
//!   [`jira::assemble`] into the same [`Cluster`]. A poll ([`ZduClient::observe`]) reads
//!   `zdu/state` once: that one answer makes both the cluster reading and the state reading
//!   (the `state` endpoint's statistics time that call).
//!
//! Failure reasons: a 401/403 whose message says the feature "requires a clustered
//! installation" (Bitbucket, Confluence) and Jira's 405 on `/cluster/nodes` ("you don't have
//! Jira Data Center") are `not_clustered`; a 403 "Basic Authentication has been disabled" is
//! `credentials` (its message and the poll-failed log line tell the user to configure a
//! token).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::memo::{ClusterReading, Slot};
use super::{Call, FetchError, ZduClient};
use crate::config::TargetConfig;
use crate::model::extras::{self, ClusterExtras};
use crate::model::jira::{self, JiraNodes, JiraState};
use crate::model::{Answer, Cluster, DecodeError, ErrorBody, Limits, Product, StateResponse};

/// Jira's cluster-state path, from the site root.
pub const JIRA_STATE_PATH: &str = "rest/api/2/cluster/zdu/state";
/// Jira's node-list path, from the site root.
pub const JIRA_NODES_PATH: &str = "rest/api/2/cluster/nodes";

/// The request URLs of one target, built once.
#[derive(Debug)]
pub(crate) struct Urls {
    pub(crate) cluster: reqwest::Url,
    pub(crate) state: reqwest::Url,
    pub(crate) jira_state: reqwest::Url,
    pub(crate) jira_nodes: reqwest::Url,
}

impl Urls {
    pub(crate) fn of(target: &TargetConfig) -> Self {
        Urls {
            cluster: target.endpoint("cluster"),
            state: target.endpoint("state"),
            jira_state: target.site_endpoint(JIRA_STATE_PATH),
            jira_nodes: target.site_endpoint(JIRA_NODES_PATH),
        }
    }
}

/// A Bitbucket `/rest/zdu/cluster` answer: the cluster, no extras.
struct BitbucketCluster(ClusterReading);

impl Answer for BitbucketCluster {
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let cluster = Cluster::from_json(body, limits)?;
        Ok(BitbucketCluster((cluster, ClusterExtras::default())))
    }
}

/// A Confluence `/rest/zdu/cluster` answer: the cluster and its extras.
struct ConfluenceCluster(ClusterReading);

impl Answer for ConfluenceCluster {
    fn from_json(body: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let cluster = Cluster::from_json(body, limits)?;
        Ok(ConfluenceCluster((cluster, extras::confluence(body))))
    }
}

/// One timed reading: how long it took and what it gave.
pub type Timed<T> = (Duration, Result<T, FetchError>);

/// What one poll reads: the cluster reading (the [`Cluster`] and the product's extras) and
/// the state reading, each with its duration. A reading whose answers are byte-for-byte
/// those of the previous poll is the previous reading itself (the same `Arc`, see
/// [`super::memo`]).
pub type Observation = (Timed<Arc<ClusterReading>>, Timed<Arc<StateResponse>>);

async fn timed<T>(fut: impl Future<Output = Result<T, FetchError>>) -> Timed<T> {
    let start = Instant::now();
    let out = fut.await;
    (start.elapsed(), out)
}

/// The longest a poll's second call waits for its first: a quarter of the timeout, at most
/// this long.
pub const MAX_HEAD_START: Duration = Duration::from_secs(1);

/// How long the second call of a poll waits for the first to finish before it starts anyway.
pub fn head_start(timeout: Duration) -> Duration {
    (timeout / 4).min(MAX_HEAD_START)
}

/// Runs `first`, then `second` as soon as `first` has finished or `head_start` has passed,
/// whichever comes first. An upstream that answers goes on answering on the connection the
/// first call opened (one connection per poll, not one per call); one that hangs on the
/// first call still has the second answered (on a connection of its own) within the poll's
/// deadline, so a hang costs one timeout and each call's reason is its own, as when the two
/// ran at once.
pub async fn in_turn<A, B>(
    first: impl Future<Output = A>,
    second: impl Future<Output = B>,
    head_start: Duration,
) -> (A, B) {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let first = async move {
        let a = first.await;
        drop(done);
        a
    };
    let second = async move {
        // Ends when `done` is dropped (the first call finished) or at the head start.
        let _ = tokio::time::timeout(head_start, finished).await;
        second.await
    };
    tokio::join!(first, second)
}

impl ZduClient {
    /// One poll's readings, one call after the other on one connection (see [`in_turn`]):
    /// for Bitbucket and Confluence `/rest/zdu/cluster` then `/rest/zdu/state`; for Jira
    /// `zdu/state` (read once, it gives the cluster state and the state reading) then
    /// `cluster/nodes`, the cluster reading taking as long as the two together and failing
    /// with the state call's error first. Both calls end by the poll's one deadline (the
    /// target's timeout from the start of the poll).
    pub async fn observe(&self) -> Observation {
        let timeout = self.target().timeout();
        let deadline = Instant::now() + timeout;
        let (first, last) = (
            Call {
                deadline,
                close: false,
            },
            Call {
                deadline,
                close: true,
            },
        );
        let head_start = head_start(timeout);
        let cluster = &self.urls.cluster;
        let state =
            || timed(self.get_memo(Slot::State, &self.urls.state, last, |s: StateResponse| s));
        match self.target().product() {
            Product::Bitbucket => {
                let cluster =
                    self.get_memo(Slot::Cluster, cluster, first, |c: BitbucketCluster| c.0);
                return in_turn(timed(cluster), state(), head_start).await;
            }
            Product::Confluence => {
                let cluster =
                    self.get_memo(Slot::Cluster, cluster, first, |c: ConfluenceCluster| c.0);
                return in_turn(timed(cluster), state(), head_start).await;
            }
            Product::Jira => {}
        }
        let started = Instant::now();
        let ((state_took, state), (_, nodes)) = in_turn(
            timed(self.get_memo(
                Slot::JiraState,
                &self.urls.jira_state,
                first,
                |s: JiraState| s,
            )),
            timed(self.get_memo(
                Slot::JiraNodes,
                &self.urls.jira_nodes,
                last,
                |n: JiraNodes| n,
            )),
            head_start,
        )
        .await;
        let cluster = match (&state, nodes) {
            (Ok(s), Ok(n)) => Ok(self.memo.jira_cluster(s, &n)),
            (Err(e), _) => Err(e.clone()),
            (Ok(_), Err(e)) => Err(e),
        };
        let responder = state.map(|s| self.memo.jira_responder(&s));
        ((started.elapsed(), cluster), (state_took, responder))
    }

    /// One reading of the cluster in the target's product: the [`Cluster`] every reader
    /// renders and the product's extras (empty for Bitbucket).
    pub async fn observe_cluster(&self) -> Result<(Cluster, ClusterExtras), FetchError> {
        match self.target().product() {
            Product::Bitbucket => Ok((self.cluster().await?, ClusterExtras::default())),
            Product::Confluence => {
                let ConfluenceCluster(reading) = self.get_url(self.urls.cluster.clone()).await?;
                Ok(reading)
            }
            Product::Jira => {
                let (state, nodes) = tokio::join!(self.jira_state(), self.jira_nodes());
                Ok(jira::assemble(state?, nodes?))
            }
        }
    }

    /// The responder reading: `/rest/zdu/state`, or Jira's cluster state and build.
    pub async fn observe_state(&self) -> Result<StateResponse, FetchError> {
        match self.target().product() {
            Product::Bitbucket | Product::Confluence => self.state().await,
            Product::Jira => Ok(jira::state_response(&self.jira_state().await?)),
        }
    }

    /// The URL an endpoint (`cluster`, `state`) reads in the target's product, for logs
    /// (Jira's `cluster` reading is the node list, with the state).
    pub fn endpoint_url(&self, endpoint: &str) -> reqwest::Url {
        match (self.target().product(), endpoint) {
            (Product::Jira, "cluster") => self.urls.jira_nodes.clone(),
            (Product::Jira, _) => self.urls.jira_state.clone(),
            (_, path) => self.target().endpoint(path),
        }
    }

    /// `GET /rest/api/2/cluster/zdu/state`.
    pub async fn jira_state(&self) -> Result<JiraState, FetchError> {
        self.get_url(self.urls.jira_state.clone()).await
    }

    /// `GET /rest/api/2/cluster/nodes`.
    pub async fn jira_nodes(&self) -> Result<JiraNodes, FetchError> {
        self.get_url(self.urls.jira_nodes.clone()).await
    }
}

/// The upstream's error message: Bitbucket's and Confluence's `{"errors":[{"message"}]}`,
/// Jira's `{"errorMessages":[...]}` or a bare `{"message"}` (the Basic-disabled answer).
fn message(body: &[u8]) -> Option<String> {
    if let Some(m) = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.messages())
    {
        return Some(m);
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list: Vec<&str> = v
        .get("errorMessages")
        .and_then(|m| m.as_array())
        .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
        .unwrap_or_default();
    if !list.is_empty() {
        return Some(list.join("; "));
    }
    v.get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
}

/// The failure an error status means for `product`. Bitbucket's mapping is
/// [`super::status_error`] unchanged, except for the Basic-disabled 403.
pub(crate) fn status_error(
    product: Product,
    status: StatusCode,
    body: &[u8],
    location: Option<String>,
) -> FetchError {
    let msg = message(body).map(|m| super::truncate(&m, 300));
    let lower = msg.as_deref().unwrap_or_default().to_ascii_lowercase();
    match status.as_u16() {
        403 if lower.contains("basic authentication has been disabled") => {
            FetchError::BasicAuthDisabled(msg)
        }
        405 if product == Product::Jira => FetchError::NotClustered {
            status: 405,
            message: msg,
        },
        401 | 403 if product != Product::Bitbucket => {
            match super::status_error(status, body, location) {
                // Jira's errorMessages may also say the instance is not clustered.
                FetchError::Unauthorized(None) | FetchError::Forbidden(None)
                    if lower.contains("clustered installation") =>
                {
                    FetchError::NotClustered {
                        status: status.as_u16(),
                        message: msg,
                    }
                }
                FetchError::Unauthorized(None) => FetchError::Unauthorized(msg),
                FetchError::Forbidden(None) => FetchError::Forbidden(msg),
                other => other,
            }
        }
        _ => super::status_error(status, body, location),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Reason;

    fn reason(p: Product, status: u16, body: &str) -> Reason {
        status_error(
            p,
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            None,
        )
        .reason()
    }

    #[test]
    fn failure_reasons_per_product() {
        let clustered = r#"{"errors":[{"message":"Rolling upgrades feature requires a clustered installation."}]}"#;
        for p in Product::ALL {
            assert_eq!(reason(p, 403, clustered), Reason::NotClustered, "{p}");
            assert_eq!(reason(p, 401, "{}"), Reason::Unauthorized, "{p}");
            assert_eq!(reason(p, 403, "{}"), Reason::Forbidden, "{p}");
            assert_eq!(
                reason(
                    p,
                    403,
                    r#"{"message":"Basic Authentication has been disabled on this instance."}"#
                ),
                Reason::Credentials,
                "{p}"
            );
        }
        let jira_405 = r#"{"errorMessages":["You don't have Jira Data Center"],"errors":{}}"#;
        assert_eq!(reason(Product::Jira, 405, jira_405), Reason::NotClustered);
        assert_eq!(
            reason(Product::Bitbucket, 405, jira_405),
            Reason::UnexpectedStatus
        );
        let e = status_error(
            Product::Jira,
            StatusCode::UNAUTHORIZED,
            br#"{"errorMessages":["user doesn't have admin permissions"],"errors":{}}"#,
            None,
        );
        assert!(e.to_string().contains("admin permissions"), "{e}");
        let e = status_error(
            Product::Jira,
            StatusCode::FORBIDDEN,
            br#"{"message":"Basic Authentication has been disabled on this instance."}"#,
            None,
        );
        assert!(
            e.to_string().contains("configure a personal access token"),
            "{e}"
        );
    }
}

//! What a client remembers between polls so that an unchanged upstream costs little: per
//! endpoint, the last answer's bytes and what they decoded to; the request URLs, built once;
//! and the `Authorization` header, built once per credential value.
//!
//! **An answer byte-for-byte equal to the previous one** (the common case: an idle cluster
//! answers the same every poll) is not decoded again: the very same decoded value (the same
//! `Arc`) is handed out, which is how the poller ([`crate::poller`]) knows it may skip the
//! tracker and reuse its cluster view. The comparison is on the whole body and its
//! `Content-Type`, never a hash: a changed answer is always decoded. Only successful decodes
//! are remembered; a request that fails leaves the memo as it was.
//!
//! **The secret file** is checked (a `stat`) at most once per [`SECRET_RECHECK`] per target,
//! not once per request: a poll's requests share one check, and a rotated secret
//! is used from the next poll on.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;

use super::{decode_success, FetchError};
use crate::config::{AuthConfig, TargetConfig};
use crate::model::extras::ClusterExtras;
use crate::model::jira::{self, JiraNodes, JiraState};
use crate::model::{Answer, Cluster, Limits, StateResponse};
use crate::secret::{Redactor, Secret};

/// A secret file is checked for a change at most this often per target.
pub const SECRET_RECHECK: Duration = Duration::from_secs(1);

/// One cluster reading: the [`Cluster`] and the product's extras.
pub type ClusterReading = (Cluster, ClusterExtras);

/// The endpoints whose last answer is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// `/rest/zdu/cluster` (Bitbucket, Confluence).
    Cluster,
    /// `/rest/zdu/state` (Bitbucket, Confluence).
    State,
    /// Jira's `cluster/zdu/state`.
    JiraState,
    /// Jira's `cluster/nodes`.
    JiraNodes,
}

struct Entry {
    content_type: String,
    body: Vec<u8>,
    value: Arc<dyn Any + Send + Sync>,
}

/// Jira's readings are made of two answers: what was derived from which.
#[derive(Default)]
struct JiraDerived {
    responder: Option<(Arc<JiraState>, Arc<StateResponse>)>,
    cluster: Option<(Arc<JiraState>, Arc<JiraNodes>, Arc<ClusterReading>)>,
}

/// The remembered answers of one client (see the module documentation).
#[derive(Default)]
pub(crate) struct Memo {
    slots: [Mutex<Option<Entry>>; 4],
    jira: Mutex<JiraDerived>,
    auth: Mutex<Option<(Instant, Arc<Credential>)>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Memo {
    /// The answer `body` decoded as an `A`, made a `T` by `into`: the value remembered for
    /// `slot` when the body and its content type equal the last ones decoded there, else a
    /// new decode (remembered when it succeeds).
    pub(crate) fn decode<A: Answer, T: Send + Sync + 'static>(
        &self,
        slot: Slot,
        content_type: &str,
        body: Vec<u8>,
        limits: Limits,
        into: impl FnOnce(A) -> T,
    ) -> Result<Arc<T>, FetchError> {
        let mut entry = lock(&self.slots[slot as usize]);
        if let Some(e) = entry.as_ref() {
            if e.body == body && e.content_type == content_type {
                if let Ok(v) = e.value.clone().downcast::<T>() {
                    return Ok(v);
                }
            }
        }
        let value = Arc::new(into(decode_success::<A>(&body, content_type, limits)?));
        *entry = Some(Entry {
            content_type: content_type.to_string(),
            body,
            value: value.clone(),
        });
        Ok(value)
    }

    /// Jira's state reading of `state`: the same as last time when `state` is the same value.
    pub(crate) fn jira_responder(&self, state: &Arc<JiraState>) -> Arc<StateResponse> {
        let mut d = lock(&self.jira);
        match &d.responder {
            Some((from, r)) if Arc::ptr_eq(from, state) => r.clone(),
            _ => {
                let r = Arc::new(jira::state_response(state));
                d.responder = Some((state.clone(), r.clone()));
                r
            }
        }
    }

    /// Jira's cluster reading of `state` and `nodes`: the same as last time when both are
    /// the same values.
    pub(crate) fn jira_cluster(
        &self,
        state: &Arc<JiraState>,
        nodes: &Arc<JiraNodes>,
    ) -> Arc<ClusterReading> {
        let mut d = lock(&self.jira);
        match &d.cluster {
            Some((s, n, c)) if Arc::ptr_eq(s, state) && Arc::ptr_eq(n, nodes) => c.clone(),
            _ => {
                let c = Arc::new(jira::assemble((**state).clone(), (**nodes).clone()));
                d.cluster = Some((state.clone(), nodes.clone(), c.clone()));
                c
            }
        }
    }

    /// The target's credential, its secret checked at most once per [`SECRET_RECHECK`];
    /// None without authentication.
    pub(crate) fn credential(
        &self,
        target: &TargetConfig,
    ) -> Result<Option<Arc<Credential>>, FetchError> {
        let (username, source) = match target.auth() {
            AuthConfig::None => return Ok(None),
            AuthConfig::Basic { username, password } => (Some(username.as_str()), password),
            AuthConfig::Bearer { token } => (None, token),
        };
        let mut cached = lock(&self.auth);
        if let Some((checked, cred)) = cached.as_ref() {
            if checked.elapsed() < SECRET_RECHECK {
                return Ok(Some(cred.clone()));
            }
        }
        // Unreadable only if the file was never readable; config checks that at start.
        let secret = source
            .get()
            .map_err(|e| FetchError::Credentials(e.to_string()))?;
        let cred = match cached.as_ref() {
            Some((_, c)) if c.secret == secret => c.clone(),
            _ => Arc::new(Credential::new(username, secret)),
        };
        *cached = Some((Instant::now(), cred.clone()));
        Ok(Some(cred))
    }
}

/// A credential ready to send: its `Authorization` header, built once per value.
pub(crate) struct Credential {
    username: Option<String>,
    secret: Secret,
    /// None when the value cannot be a header: the request builder then reports it as before.
    header: Option<HeaderValue>,
}

impl Credential {
    fn new(username: Option<&str>, secret: Secret) -> Self {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let text = match username {
            Some(user) => format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{}", secret.expose()))
            ),
            None => format!("Bearer {}", secret.expose()),
        };
        let header = HeaderValue::try_from(text).ok().map(|mut h| {
            h.set_sensitive(true);
            h
        });
        Credential {
            username: username.map(str::to_string),
            secret,
            header,
        }
    }

    /// `req` with this credential.
    pub(crate) fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.header, &self.username) {
            (Some(h), _) => req.header(reqwest::header::AUTHORIZATION, h.clone()),
            (None, Some(user)) => req.basic_auth(user, Some(self.secret.expose())),
            (None, None) => req.bearer_auth(self.secret.expose()),
        }
    }

    /// The forms of the secret to remove from error texts.
    pub(crate) fn redactor(&self) -> Redactor {
        Redactor::new(self.username.as_deref(), self.secret.expose())
    }
}

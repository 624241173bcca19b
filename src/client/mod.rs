//! The upstream client: GET-only access to Bitbucket's `/rest/zdu/cluster` and
//! `/rest/zdu/state`, with a per-request timeout, a cap on the body, no credential-carrying
//! redirects to another host, and every failure mapped to one fixed [`Reason`].
//!
//! The client has no method that sends anything but GET: the exporter cannot start, cancel or
//! approve an upgrade, by construction.
//!
//! The unit tests are in `client/tests.rs`.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONNECTION, CONTENT_TYPE, USER_AGENT};
use reqwest::StatusCode;

use crate::config::TargetConfig;
use crate::model::{Answer, Cluster, DecodeError, ErrorBody, Limits, StateResponse};
use crate::secret::Redactor;

mod error;
pub mod memo;
pub mod product;
pub mod shared;
pub mod tls;
pub use error::{FetchError, PerReason, Reason};
pub use shared::{ClientKey, SharedClients};

use memo::{Memo, Slot};
use product::Urls;

/// Largest body the exporter reads from Bitbucket.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Same-origin redirects followed per request; one more is reported as a redirect loop.
pub const MAX_REDIRECTS: usize = 5;

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Building the client failed (bad CA file, TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for target {target}: {message}")]
pub struct ClientBuildError {
    target: String,
    message: String,
}

/// Installs the one crypto provider (ring) used across the dependency graph.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A GET-only client for one target.
#[derive(Debug, Clone)]
pub struct ZduClient {
    http: reqwest::Client,
    target: TargetConfig,
    body_limit: usize,
    /// Request URLs, last answers and the credential ([`memo`]), shared by clones.
    memo: Arc<Memo>,
    urls: Arc<Urls>,
    /// The poll's last request asks the upstream to close its connection
    /// ([`ZduClient::closing_connections`]).
    close_after_poll: bool,
}

/// One request's place in a poll: the poll's deadline, and whether the connection is closed
/// after it (the poll's last request, when connections are not kept alive between polls).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    deadline: Instant,
    close: bool,
}

impl Call {
    /// A request on its own: the target's whole timeout, the connection kept as the
    /// client's pool decides.
    fn alone(timeout: Duration) -> Self {
        Call {
            deadline: Instant::now() + timeout,
            close: false,
        }
    }
}

impl ZduClient {
    /// Builds a client of its own for a validated target (one-off uses such as `status`; the
    /// exporter shares clients between targets through [`SharedClients`]).
    pub fn new(target: TargetConfig) -> Result<Self, ClientBuildError> {
        let http = ClientKey::of(&target, true)?.build(&target)?;
        Ok(Self::with_http(target, http))
    }

    /// A client for `target` that sends through `http`, a client that may be shared with
    /// other targets (it holds no credentials: each request carries the target's own).
    pub fn with_http(target: TargetConfig, http: reqwest::Client) -> Self {
        ZduClient {
            http,
            urls: Arc::new(Urls::of(&target)),
            target,
            body_limit: DEFAULT_BODY_LIMIT,
            memo: Arc::new(Memo::default()),
            close_after_poll: false,
        }
    }

    /// With `close`, the last request of each poll carries `Connection: close`: for a client
    /// whose connections must not outlive a poll (the exporter's descriptor budget cannot
    /// keep one per origin, [`crate::sys::fds`]), the poll's calls share one connection and
    /// nothing stays open after it.
    pub fn closing_connections(mut self, close: bool) -> Self {
        self.close_after_poll = close;
        self
    }

    /// The bounds an answer of this target must keep.
    pub fn limits(&self) -> Limits {
        Limits {
            max_nodes: self.target.max_nodes(),
            ..Limits::default()
        }
    }

    /// Overrides the body cap (tests).
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// The target this client polls.
    pub fn target(&self) -> &TargetConfig {
        &self.target
    }

    /// `GET /rest/zdu/cluster`.
    pub async fn cluster(&self) -> Result<Cluster, FetchError> {
        self.get_url(self.urls.cluster.clone()).await
    }

    /// `GET /rest/zdu/state`.
    pub async fn state(&self) -> Result<StateResponse, FetchError> {
        self.get_url(self.urls.state.clone()).await
    }

    async fn get_url<T: Answer>(&self, url: reqwest::Url) -> Result<T, FetchError> {
        let limits = self.limits();
        let call = Call::alone(self.target.timeout());
        self.request(url, call, |ct, body| decode_success(&body, ct, limits))
            .await
    }

    /// `url`'s answer decoded, or the value remembered in `slot` when the answer is the
    /// same as the last one decoded there ([`memo`]).
    /// The answer is decoded as an `A` and made a `T` by `into`.
    async fn get_memo<A: Answer, T: Send + Sync + 'static>(
        &self,
        slot: Slot,
        url: &reqwest::Url,
        call: Call,
        into: impl FnOnce(A) -> T,
    ) -> Result<Arc<T>, FetchError> {
        let limits = self.limits();
        self.request(url.clone(), call, |ct, body| {
            self.memo.decode(slot, ct, body, limits, into)
        })
        .await
    }

    /// GET `url` with the target's credential, within `call`'s deadline; a successful answer
    /// (its content type and body) goes through `decode`. Every error text is redacted.
    async fn request<T>(
        &self,
        url: reqwest::Url,
        call: Call,
        decode: impl FnOnce(&str, Vec<u8>) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            // The poll's deadline passed before this call could start: it timed out too.
            return Err(FetchError::Timeout(self.target.timeout()));
        }
        let mut req = self
            .http
            .get(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(
                USER_AGENT,
                HeaderValue::from_static(crate::sys::version::USER_AGENT),
            )
            .timeout(remaining);
        if call.close && self.close_after_poll {
            req = req.header(CONNECTION, HeaderValue::from_static("close"));
        }
        let cred = self.memo.credential(&self.target)?;
        if let Some(c) = &cred {
            req = c.apply(req);
        }
        let result = match self.send(req, cred.as_deref()).await {
            Ok((content_type, body)) => decode(&content_type, body),
            Err(e) => Err(e),
        };
        result.map_err(|e| match &cred {
            Some(c) => redact_error(e, &c.redactor()),
            None => e,
        })
    }

    /// Sends `req`: a successful answer's content type and body, or the failure.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        cred: Option<&memo::Credential>,
    ) -> Result<(String, Vec<u8>), FetchError> {
        let timeout = self.target.timeout();
        let resp = req.send().await.map_err(|e| classify(&e, timeout))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let final_url = resp.url().clone();
        let body = read_capped(resp, self.body_limit, timeout).await?;
        if status.is_success() {
            return Ok((content_type, body));
        }
        if status.is_redirection() {
            // A same-origin redirect is followed, so one that comes back here was the last
            // the policy allows: the server keeps redirecting (a loop).
            let next = location.as_deref().and_then(|l| final_url.join(l).ok());
            if next.is_some_and(|u| same_origin(&u, self.target.base_url())) {
                return Err(FetchError::UnexpectedStatus {
                    status: status.as_u16(),
                    detail: Some(format!(
                        "more than {MAX_REDIRECTS} same-origin redirects: a redirect loop"
                    )),
                });
            }
        }
        // Redact before the message is parsed and truncated, so no fragment survives. The
        // secret's encoded forms are built only here, on an error: they cost allocations.
        let forms = cred.map_or_else(Redactor::default, |c| c.redactor());
        Err(product::status_error(
            self.target.product(),
            status,
            &forms.redact_bytes(&body),
            location,
        ))
    }
}

/// Removes the credential from an error's texts: an upstream, or a proxy in front of it, may
/// echo the request (Authorization header included) in an error page or message.
fn redact_error(e: FetchError, forms: &Redactor) -> FetchError {
    if forms.is_empty() {
        return e;
    }
    let r = |s: String| forms.redact(&s);
    match e {
        FetchError::Connect(s) => FetchError::Connect(r(s)),
        FetchError::FdExhausted(s) => FetchError::FdExhausted(r(s)),
        FetchError::Tls(s) => FetchError::Tls(r(s)),
        FetchError::Unauthorized(m) => FetchError::Unauthorized(m.map(r)),
        FetchError::Forbidden(m) => FetchError::Forbidden(m.map(r)),
        FetchError::NotClustered { status, message } => FetchError::NotClustered {
            status,
            message: message.map(r),
        },
        FetchError::UnexpectedStatus { status, detail } => FetchError::UnexpectedStatus {
            status,
            detail: detail.map(r),
        },
        FetchError::NotJson(s) => FetchError::NotJson(r(s)),
        FetchError::Decode(s) => FetchError::Decode(r(s)),
        FetchError::Credentials(s) => FetchError::Credentials(r(s)),
        FetchError::BasicAuthDisabled(m) => FetchError::BasicAuthDisabled(m.map(r)),
        e @ (FetchError::Timeout(_)
        | FetchError::NotFound
        | FetchError::ServerError(_)
        | FetchError::BodyTooLarge(_)
        | FetchError::TooManyNodes(_)
        | FetchError::LabelTooLong(_)) => e,
    }
}

async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let announced = resp.content_length();
    if let Some(len) = announced {
        if len > limit as u64 {
            return Err(FetchError::BodyTooLarge(limit));
        }
    }
    // Sized once when announced: growing by doubling would briefly hold twice the body.
    let mut body = Vec::with_capacity(announced.map_or(0, |l| l as usize));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(FetchError::BodyTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(classify(&e, timeout)),
        }
    }
}

pub(crate) fn decode_success<T: Answer>(
    body: &[u8],
    content_type: &str,
    limits: Limits,
) -> Result<T, FetchError> {
    let ct = content_type.to_ascii_lowercase();
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let looks_html = first == Some(b'<');
    let declared_other = !ct.is_empty() && !ct.contains("json");
    if looks_html || (declared_other && first != Some(b'{')) {
        return Err(FetchError::NotJson(if ct.is_empty() {
            "none".into()
        } else {
            content_type.to_string()
        }));
    }
    T::from_json(body, limits).map_err(|e| match e {
        DecodeError::Shape(m) => FetchError::Decode(m),
        DecodeError::TooManyNodes(max) => FetchError::TooManyNodes(max),
        e @ DecodeError::LabelTooLong { .. } => FetchError::LabelTooLong(e.to_string()),
    })
}

pub(crate) fn status_error(
    status: StatusCode,
    body: &[u8],
    location: Option<String>,
) -> FetchError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.messages())
        .map(|m| truncate(&m, 300));
    let not_clustered = message
        .as_deref()
        .map(|m| m.to_ascii_lowercase().contains("clustered installation"))
        .unwrap_or(false);
    match status.as_u16() {
        401 | 403 if not_clustered => FetchError::NotClustered {
            status: status.as_u16(),
            message,
        },
        401 => FetchError::Unauthorized(message),
        403 => FetchError::Forbidden(message),
        404 => FetchError::NotFound,
        s if status.is_server_error() => FetchError::ServerError(s),
        s if status.is_redirection() => FetchError::UnexpectedStatus {
            status: s,
            detail: Some(format!(
                "redirect to {} not followed: only same-origin redirects are",
                location
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_else(|| "nowhere".into())
            )),
        },
        s => FetchError::UnexpectedStatus {
            status: s,
            detail: message,
        },
    }
}

/// Removes userinfo and query from a URL for logging.
pub fn redact_url(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<unparseable URL>".into(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Flattens an error and its sources into one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

fn classify(e: &reqwest::Error, timeout: Duration) -> FetchError {
    // reqwest puts the URL into its Display; ours never has credentials in it, but strip it
    // anyway so messages stay short.
    let e_no_url = e_without_url(e);
    let chain = error_chain(&e_no_url);
    if e.is_timeout() || chain.contains("timed out") {
        return FetchError::Timeout(timeout);
    }
    if out_of_descriptors(e) {
        return FetchError::FdExhausted(chain);
    }
    if has_rustls_error(e) {
        return FetchError::Tls(chain);
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        return FetchError::Tls(chain);
    }
    if e.is_connect() {
        return FetchError::Connect(chain);
    }
    if e.is_body() || e.is_decode() {
        return FetchError::Connect(format!("connection broke while reading the body: {chain}"));
    }
    FetchError::Connect(chain)
}

/// True when a `rustls::Error` is anywhere in the chain. `io::Error::source()` skips the
/// error an `io::Error` wraps, and a TLS failure reaches reqwest as an `io::Error` around an
/// `io::Error` around the `rustls::Error` (e.g. plain HTTP on an https URL), so look inside.
fn has_rustls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut depth = 0;
    while let Some(s) = src {
        depth += 1;
        if depth > 32 {
            return false;
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return has_rustls_error(inner);
        }
        src = s.source();
    }
    false
}

/// True when an `io::Error` in the chain is EMFILE (the process's open-files limit) or
/// ENFILE (the system's): the socket could not even be created.
fn out_of_descriptors(e: &(dyn std::error::Error + 'static)) -> bool {
    let emfile = rustix::io::Errno::MFILE.raw_os_error();
    let enfile = rustix::io::Errno::NFILE.raw_os_error();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    for _ in 0..32 {
        let Some(s) = src else { return false };
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io
                .raw_os_error()
                .is_some_and(|n| n == emfile || n == enfile)
            {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                return out_of_descriptors(inner);
            }
        }
        src = s.source();
    }
    false
}

fn e_without_url(e: &reqwest::Error) -> ErrNoUrl<'_> {
    ErrNoUrl(e)
}

struct ErrNoUrl<'a>(&'a reqwest::Error);

impl std::fmt::Debug for ErrNoUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for ErrNoUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.0.is_timeout() {
            "request timed out"
        } else if self.0.is_connect() {
            "connection failed"
        } else if self.0.is_body() {
            "body error"
        } else if self.0.is_request() {
            "request failed"
        } else {
            "HTTP error"
        };
        f.write_str(kind)
    }
}

impl std::error::Error for ErrNoUrl<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(self.0)
    }
}

#[cfg(test)]
mod tests;

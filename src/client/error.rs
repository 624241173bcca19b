//! The fixed failure reasons of the upstream client (the `reason` label), the typed map
//! counted by them, and [`FetchError`], the one error type of a fetch.

use std::time::Duration;

/// The fixed set of failure reasons, used as the `reason` label (the variant's name in
/// snake_case).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
    strum::EnumCount,
    enum_map::Enum,
)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// No complete answer within the timeout.
    Timeout,
    /// Connection refused, reset or broken; DNS failure.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// 401: credentials refused.
    Unauthorized,
    /// 403: the user lacks SYS_ADMIN.
    Forbidden,
    /// 401/403 "requires a clustered installation".
    NotClustered,
    /// 404: no ZDU API at this URL.
    NotFound,
    /// 5xx.
    ServerError,
    /// Any other status, including a redirect to another host.
    UnexpectedStatus,
    /// 200 with something other than JSON (an SSO login page).
    NotJson,
    /// JSON that is malformed or not of the ZDU shape.
    Decode,
    /// The body exceeded the size cap.
    BodyTooLarge,
    /// More node entries than `--bitbucket.max-nodes`.
    TooManyNodes,
    /// A value that becomes a label is longer than 256 bytes.
    LabelTooLong,
    /// The password or token file cannot be read; no request was sent.
    Credentials,
    /// The exporter had no file descriptor left for a connection (EMFILE/ENFILE): the
    /// exporter's limit, not the upstream, is at fault.
    FdExhausted,
}

impl Reason {
    /// Every reason, in a fixed order (all are pre-declared in `/metrics`).
    pub fn all() -> impl Iterator<Item = Reason> {
        <Reason as strum::IntoEnumIterator>::iter()
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One value per [`Reason`]: a typed map, so counters are read and written by reason, never
/// by a position in an array. Iterates in the order of [`Reason::all`].
pub type PerReason<T> = enum_map::EnumMap<Reason, T>;

/// A failed request. Messages carry URLs without credentials and Bitbucket's own error text,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out after {0:?}")]
    /// No complete answer within the timeout.
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    /// Connection refused, reset or broken; DNS failure.
    Connect(String),
    #[error("TLS handshake failed: {0}")]
    /// The TLS handshake failed.
    Tls(String),
    #[error("401 Unauthorized: the credentials were refused{}", fmt_msg(.0))]
    /// 401, with Bitbucket's message if any.
    Unauthorized(Option<String>),
    #[error("403 Forbidden: the user lacks SYS_ADMIN permission{}", fmt_msg(.0))]
    /// 403, with Bitbucket's message if any.
    Forbidden(Option<String>),
    #[error("HTTP {status}: the instance is not clustered{}", fmt_msg(.message))]
    /// 401/403 saying the instance is not clustered.
    NotClustered {
        /// The HTTP status.
        status: u16,
        /// Bitbucket's message.
        message: Option<String>,
    },
    #[error("404 Not Found: no ZDU API at this URL (check the context path)")]
    /// 404.
    NotFound,
    #[error("HTTP {0}: Bitbucket server error")]
    /// A 5xx status.
    ServerError(u16),
    #[error("unexpected HTTP status {status}{}", fmt_msg(.detail))]
    /// Any other status.
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// Bitbucket's message or a redirect target.
        detail: Option<String>,
    },
    #[error("response is not JSON (content type {0:?}); an SSO login page?")]
    /// 200 with another content type (the type given).
    NotJson(String),
    #[error("cannot decode the response: {0}")]
    /// A body that does not decode (why).
    Decode(String),
    #[error("response body exceeds {0} bytes")]
    /// The body exceeded this many bytes.
    BodyTooLarge(usize),
    #[error("answer refused: more than {0} node entries (--bitbucket.max-nodes)")]
    /// More node entries than this cap; nothing of the answer is kept.
    TooManyNodes(usize),
    #[error("answer refused: {0}")]
    /// A label-bound value over the length cap (which field); nothing of the answer is kept.
    LabelTooLong(String),
    /// 403 saying HTTP Basic is disabled on the instance (Jira, Confluence, Bitbucket can all
    /// switch it off for the API): the fix is a personal access token.
    #[error("403 Forbidden: HTTP Basic authentication is disabled on this instance; configure a personal access token (auth.token_file, --bitbucket.token-file) instead{}", fmt_msg(.0))]
    BasicAuthDisabled(Option<String>),
    /// The password or token file cannot be read (the request was not sent).
    #[error("credentials unavailable: {0}")]
    Credentials(String),
    /// No file descriptor left for the connection (EMFILE/ENFILE): the exporter's open-files
    /// limit is too low for its targets, the upstream was not reached.
    #[error(
        "no file descriptor left for a connection (raise the open-files limit, LimitNOFILE=): {0}"
    )]
    FdExhausted(String),
}

fn fmt_msg(m: &Option<String>) -> String {
    m.as_ref().map(|m| format!(" ({m})")).unwrap_or_default()
}

impl FetchError {
    /// The fixed reason label of this failure.
    pub fn reason(&self) -> Reason {
        match self {
            FetchError::Timeout(_) => Reason::Timeout,
            FetchError::Connect(_) => Reason::Connect,
            FetchError::Tls(_) => Reason::Tls,
            FetchError::Unauthorized(_) => Reason::Unauthorized,
            FetchError::Forbidden(_) => Reason::Forbidden,
            FetchError::NotClustered { .. } => Reason::NotClustered,
            FetchError::NotFound => Reason::NotFound,
            FetchError::ServerError(_) => Reason::ServerError,
            FetchError::UnexpectedStatus { .. } => Reason::UnexpectedStatus,
            FetchError::NotJson(_) => Reason::NotJson,
            FetchError::Decode(_) => Reason::Decode,
            FetchError::BodyTooLarge(_) => Reason::BodyTooLarge,
            FetchError::TooManyNodes(_) => Reason::TooManyNodes,
            FetchError::LabelTooLong(_) => Reason::LabelTooLong,
            FetchError::Credentials(_) | FetchError::BasicAuthDisabled(_) => Reason::Credentials,
            FetchError::FdExhausted(_) => Reason::FdExhausted,
        }
    }
}
